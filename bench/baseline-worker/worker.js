// The runtime's ceilings, for edgeloop-bench: the least a request can cost on workerd, and
// the least a Durable Object append can cost. Nothing of Edgeloop's code runs here.
//
//   GET  /noop                   answers at once (the runtime's per-request ceiling)
//   POST /insert/{id}            one INSERT of a ~200-byte row into object {id}'s SQLite
//   POST /insert/{id}?rows=N     N rows in one request (one implicit transaction), like a batch
//
// The row is the size of an Edgeloop event envelope in MessagePack (~200 bytes).

const ROW = new Uint8Array(200).fill(0x61);

export class Bare {
    constructor(ctx, env) {
        this.sql = ctx.storage.sql;
        this.sql.exec(
            "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)",
        );
        const [head] = this.sql.exec("SELECT COALESCE(MAX(seq), 0) AS head FROM events").toArray();
        this.head = head.head;
    }

    async fetch(request) {
        const rows = Number(new URL(request.url).searchParams.get("rows") ?? "1");
        for (let i = 0; i < rows; i++) {
            this.head += 1;
            this.sql.exec("INSERT INTO events (seq, payload) VALUES (?, ?)", this.head, ROW);
        }
        return new Response(JSON.stringify({ version: this.head }), {
            headers: { "content-type": "application/json" },
        });
    }
}

export default {
    async fetch(request, env) {
        const url = new URL(request.url);
        if (url.pathname === "/noop" || url.pathname === "/healthz") {
            return new Response('{"status":"ok"}', { headers: { "content-type": "application/json" } });
        }
        const insert = url.pathname.match(/^\/insert\/([^/]+)$/);
        if (insert && request.method === "POST") {
            const stub = env.BARE.get(env.BARE.idFromName(insert[1]));
            return stub.fetch(request);
        }
        return new Response("not found", { status: 404 });
    },
};
