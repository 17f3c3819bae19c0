// TypeScript SDK (@restatedev/restate-sdk from npm) side of the benchmark, on Node's http2 server.
//   node benchmarks/ts/services.mjs --port 9082
// Plain ESM JavaScript against the TS SDK's API (no compile step). The polyfill import must come first.
import "./polyfill.mjs";
import * as http2 from "node:http2";
import * as restate from "@restatedev/restate-sdk";

const noop = restate.service({
  name: "NoopTs",
  handlers: { echo: async (ctx, value) => value },
});

const greeter = restate.service({
  name: "GreeterTs",
  handlers: { greet: async (ctx, name) => ctx.run("greet", () => `Hello, ${name}!`) },
});

const counter = restate.object({
  name: "CounterTs",
  handlers: {
    add: async (ctx, amount) => {
      const current = (await ctx.get("count")) ?? 0;
      ctx.set("count", current + amount);
      return current + amount;
    },
  },
});

const sender = restate.service({
  name: "SenderTs",
  handlers: {
    send: async (ctx, value) => {
      ctx.serviceSendClient(noop).echo(value);
      return "sent";
    },
  },
});

const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? parseInt(process.argv[portArg + 1], 10) : 9082;
const handler = restate.endpoint().bind(noop).bind(greeter).bind(counter).bind(sender).http2Handler();
const server = http2.createServer(handler);
server.listen(port, "127.0.0.1", () => console.log(`restate TS SDK listening on 127.0.0.1:${port}`));
const stop = () => { server.close(); for (const s of sessions) s.destroy(); setTimeout(() => process.exit(0), 200).unref(); };
const sessions = new Set();
server.on("session", (s) => { sessions.add(s); s.on("close", () => sessions.delete(s)); });
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
