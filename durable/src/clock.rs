//! The one clock and id source of the objects (the domain takes both as inputs).

/// Milliseconds since the Unix epoch, from the runtime's clock. (Inside a Worker the
/// clock advances only across I/O, which is all the precision recorded times need.)
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// A UUID v7 for an event or command: time-ordered, so ids sort roughly by recording time.
pub fn new_event_id() -> String {
    let ms = now_ms().max(0) as u64;
    let ts =
        uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, ((ms % 1000) * 1_000_000) as u32);
    uuid::Uuid::new_v7(ts).to_string()
}

/// A `ScheduledTime` for an absolute time in Unix ms. (`set_alarm` reads a bare integer
/// as an offset from now, so absolute times go through a `Date`.)
pub fn at_unix_ms(unix_ms: i64) -> worker::ScheduledTime {
    worker::ScheduledTime::new(js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(
        unix_ms as f64,
    )))
}
