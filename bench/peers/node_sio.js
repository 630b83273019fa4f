// Peer for bench/fanout.py: Node socket.io 4.x. io.emit("poke", message) to every
// client (socket.io encodes a broadcast once). Engine.IO pings are pushed out past
// the run. A UDP datagram on the control port carries a poke's JSON.
//     node bench/peers/node_sio.js <port> <control-udp-port>
"use strict";
const http = require("http");
const dgram = require("dgram");
const { Server } = require("socket.io");

const [port, control] = process.argv.slice(2).map(Number);
const server = http.createServer();
const io = new Server(server, {
  pingInterval: 3600000,
  pingTimeout: 600000,
  serveClient: false,
  perMessageDeflate: false,
  cors: { origin: "*" },
});
const udp = dgram.createSocket("udp4");
udp.on("message", (msg) => io.emit("poke", JSON.parse(msg.toString())));
udp.bind(control, "127.0.0.1");
server.listen(port, "127.0.0.1", 4096, () => console.log(`node socket.io listening on 127.0.0.1:${port}`));
