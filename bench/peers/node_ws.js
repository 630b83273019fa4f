// Peer for bench/fanout.py: Node `ws` fan-out. One send() of the poke's text per
// client (the library's idiomatic broadcast). A UDP datagram on the control port
// carries a poke's JSON.
//     node bench/peers/node_ws.js <port> <control-udp-port>
"use strict";
const http = require("http");
const dgram = require("dgram");
const { WebSocketServer } = require("ws");

const [port, control] = process.argv.slice(2).map(Number);
const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: true });
wss.on("connection", (ws) => { ws.on("error", () => {}); });
const udp = dgram.createSocket("udp4");
udp.on("message", (msg) => {
  const text = msg.toString();
  for (const client of wss.clients) client.send(text);
});
udp.bind(control, "127.0.0.1");
server.listen(port, "127.0.0.1", 4096, () => console.log(`node ws listening on 127.0.0.1:${port}`));
