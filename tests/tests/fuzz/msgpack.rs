//! MessagePack, written by hand so that it can be anything (bytes, extensions, bad UTF-8,
//! lengths that lie).

use super::*;

#[derive(Debug, Clone)]
pub(super) enum Mp {
    Nil,
    Bool(bool),
    Int(i64),
    UInt(u64),
    F64(f64),
    Str(Vec<u8>),
    Bin(Vec<u8>),
    Ext(i8, Vec<u8>),
    Array(Vec<Mp>),
    Map(Vec<(Mp, Mp)>),
}

impl Mp {
    pub(super) fn from_json(value: &Value) -> Mp {
        match value {
            Value::Null => Mp::Nil,
            Value::Bool(b) => Mp::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Mp::UInt(u),
                (_, Some(i), _) => Mp::Int(i),
                (_, _, f) => Mp::F64(f.unwrap_or(0.0)),
            },
            Value::String(s) => Mp::Str(s.clone().into_bytes()),
            Value::Array(items) => Mp::Array(items.iter().map(Mp::from_json).collect()),
            Value::Object(map) => Mp::Map(
                map.iter()
                    .map(|(k, v)| (Mp::Str(k.clone().into_bytes()), Mp::from_json(v)))
                    .collect(),
            ),
        }
    }

    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        fn len_header(out: &mut Vec<u8>, len: usize, fix: Option<(u8, usize)>, markers: [u8; 3]) {
            match fix {
                Some((base, max)) if len < max => out.push(base | len as u8),
                _ if len < 256 && markers[0] != 0 => out.extend([markers[0], len as u8]),
                _ if len < 65_536 => {
                    out.push(markers[1]);
                    out.extend((len as u16).to_be_bytes());
                }
                _ => {
                    out.push(markers[2]);
                    out.extend((len as u32).to_be_bytes());
                }
            }
        }
        match self {
            Mp::Nil => out.push(0xc0),
            Mp::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Mp::UInt(u) if *u < 128 => out.push(*u as u8),
            Mp::UInt(u) => {
                out.push(0xcf);
                out.extend(u.to_be_bytes());
            }
            Mp::Int(i) if (-32..0).contains(i) => out.push(*i as u8),
            Mp::Int(i) => {
                out.push(0xd3);
                out.extend(i.to_be_bytes());
            }
            Mp::F64(f) => {
                out.push(0xcb);
                out.extend(f.to_be_bytes());
            }
            Mp::Str(bytes) => {
                len_header(out, bytes.len(), Some((0xa0, 32)), [0xd9, 0xda, 0xdb]);
                out.extend(bytes);
            }
            Mp::Bin(bytes) => {
                len_header(out, bytes.len(), None, [0xc4, 0xc5, 0xc6]);
                out.extend(bytes);
            }
            Mp::Ext(kind, bytes) => {
                out.extend([0xc7, bytes.len().min(255) as u8, *kind as u8]);
                out.extend(&bytes[..bytes.len().min(255)]);
            }
            Mp::Array(items) => {
                len_header(out, items.len(), Some((0x90, 16)), [0, 0xdc, 0xdd]);
                for item in items {
                    item.encode(out);
                }
            }
            Mp::Map(entries) => {
                len_header(out, entries.len(), Some((0x80, 16)), [0, 0xde, 0xdf]);
                for (key, value) in entries {
                    key.encode(out);
                    value.encode(out);
                }
            }
        }
    }

    pub(super) fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Replaces one string value somewhere inside (not a map key) with `with`.
    pub(super) fn replace_a_string(&mut self, rng: &mut fastrand::Rng, with: &Mp) -> bool {
        let mut strings = 0;
        self.count_strings(&mut strings);
        if strings == 0 {
            return false;
        }
        let mut nth = rng.usize(..strings);
        self.replace_nth_string(&mut nth, with)
    }

    pub(super) fn count_strings(&self, n: &mut usize) {
        match self {
            Mp::Str(_) => *n += 1,
            Mp::Array(items) => items.iter().for_each(|i| i.count_strings(n)),
            Mp::Map(entries) => entries.iter().for_each(|(_, v)| v.count_strings(n)),
            _ => {}
        }
    }

    pub(super) fn replace_nth_string(&mut self, nth: &mut usize, with: &Mp) -> bool {
        match self {
            Mp::Str(_) if *nth == 0 => {
                *self = with.clone();
                true
            }
            Mp::Str(_) => {
                *nth -= 1;
                false
            }
            Mp::Array(items) => items.iter_mut().any(|i| i.replace_nth_string(nth, with)),
            Mp::Map(entries) => entries
                .iter_mut()
                .any(|(_, v)| v.replace_nth_string(nth, with)),
            _ => false,
        }
    }
}
