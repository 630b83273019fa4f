// A socket.io-client that stays connected to a real push server, logs every event
// as one JSON line, and takes commands on stdin ("refresh <token>", "quit").
//
//   node live_client.mjs <url> <mode> <how> <token> <projects as JSON>
//   mode: upgrade | websocket | polling; how: auth | event
import readline from "node:readline";
import { io } from "socket.io-client";

const [url, mode, how, token, projectsJson] = process.argv.slice(2);
const projects = JSON.parse(projectsJson);
const transports = {
  upgrade: ["polling", "websocket"],
  websocket: ["websocket"],
  polling: ["polling"],
}[mode];
const log = (obj) => console.log(JSON.stringify(obj));
setTimeout(() => {
  log({ error: "timeout" });
  process.exit(2);
}, 20000);

const options = { transports, reconnection: false, timeout: 5000 };
if (how === "auth") options.auth = { token, projects };
const socket = io(url, options);
const transport = () => socket.io.engine?.transport?.name;

socket.io.on("open", () => {
  socket.io.engine.on("upgrade", (t) => log({ upgrade: t.name }));
});
socket.on("connect", () => {
  log({ connect: true, transport: transport() });
  if (how === "event") socket.emit("subscribe", { token, projects });
});
socket.onAny((event, message) => log({ event, message, transport: transport() }));
socket.on("connect_error", (err) => {
  log({ connect_error: err.message });
  process.exit(0);
});
socket.on("disconnect", (reason) => {
  log({ disconnect: reason });
  setTimeout(() => process.exit(0), 100);
});

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const [command, argument] = line.trim().split(" ");
  if (command === "refresh") socket.emit("refresh", { token: argument, projects });
  else if (command === "quit") socket.disconnect();
});
