// Node socket.io 4.x server for bench_sio.py (same clients, same control protocol).
// socket.io is not a project dependency: install it aside and point SOCKET_IO_DIR at it,
//   mkdir /tmp/nodesio && (cd /tmp/nodesio && npm install --no-save socket.io@4.8)
//   SOCKET_IO_DIR=/tmp/nodesio node bench_node_server.mjs <port> <control-port>
import { createRequire } from "node:module";
import http from "node:http";
import net from "node:net";

const require = createRequire(import.meta.url);
const { Server } = require(
  require.resolve("socket.io", { paths: [process.env.SOCKET_IO_DIR ?? process.cwd()] }),
);
const [port, controlPort] = process.argv.slice(2).map(Number);
const PROJECT = 7;

const httpServer = http.createServer();
const io = new Server(httpServer, { transports: ["websocket"] });
io.on("connection", (socket) => {
  socket.on("subscribe", (data) => {
    for (const project of Object.keys(data.projects ?? {})) socket.join(`p${project}`);
    socket.emit("subscribed", { type: "subscribed", projects: data.projects });
  });
});
httpServer.listen(port, "127.0.0.1");

let version = 0;
net
  .createServer((conn) => {
    let buffer = "";
    conn.on("data", (data) => {
      buffer += data;
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        const command = buffer.slice(0, end).trim();
        buffer = buffer.slice(end + 1);
        if (command === "rss") conn.write(`${process.memoryUsage.rss()}\n`);
        else if (command === "cpu") {
          const usage = process.cpuUsage();
          conn.write(`${(usage.user + usage.system) / 1e6}\n`);
        } else if (command === "poke") {
          version += 1;
          const poke = { type: "poke", project: PROJECT, version, ts: Date.now() / 1000 };
          io.to(`p${PROJECT}`).emit("poke", poke);
          conn.write("ok\n");
        }
      }
    });
  })
  .listen(controlPort, "127.0.0.1");
