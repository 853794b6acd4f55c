/**
 * A small authoritative DNS server on loopback for the browser tests, so that `domains/verify` makes a
 * real look-up against records the test controls (the service gets it as ORGMAIL_DNS_NAMESERVERS).
 *
 * It answers TXT questions from what was published, NXDOMAIN for names it does not know, and an empty
 * answer for a known name asked for another type. Over UDP an answer larger than 512 bytes is sent
 * truncated (TC), so the resolver asks again over TCP on the same port (RFC 7766), as it would of a
 * real server holding a 2048-bit DKIM key.
 */

import { createSocket } from "node:dgram";
import type { Socket } from "node:dgram";
import { createServer } from "node:net";
import type { Server, Socket as TcpSocket } from "node:net";

const TXT = 16;
const ANY = 255;
const NXDOMAIN = 3;
const FORMERR = 1;
const UDP_LIMIT = 512;

export interface DnsServer {
  port: number;
  /** `host:port`, as ORGMAIL_DNS_NAMESERVERS takes it. */
  nameserver: string;
  publish: (name: string, value: string) => void;
  /** Every question asked: `name TYPE` (lower-cased, no trailing dot). */
  queries: string[];
  stop: () => Promise<void>;
}

interface Question {
  name: string;
  type: number;
  /** The question section's bytes, copied into the answer. */
  raw: Buffer;
}

function normal(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

/** The first question of a query (names in queries are not compressed). */
function readQuestion(query: Buffer): Question | null {
  if (query.length < 12 || query.readUInt16BE(4) !== 1) return null;
  const labels: string[] = [];
  let offset = 12;
  while (offset < query.length) {
    const length = query[offset]!;
    if (length === 0) break;
    if (length > 63) return null;
    labels.push(query.subarray(offset + 1, offset + 1 + length).toString("latin1"));
    offset += 1 + length;
  }
  const end = offset + 1 + 4; // the root label, QTYPE, QCLASS
  if (end > query.length) return null;
  return { name: normal(labels.join(".")), type: query.readUInt16BE(offset + 1), raw: query.subarray(12, end) };
}

/** One TXT record's RDATA: character-strings of at most 255 bytes (a long DKIM key is several). */
function txtRdata(value: string): Buffer {
  const bytes = Buffer.from(value, "utf8");
  const parts: Buffer[] = [];
  for (let i = 0; i === 0 || i < bytes.length; i += 255) {
    const chunk = bytes.subarray(i, i + 255);
    parts.push(Buffer.from([chunk.length]), chunk);
  }
  return Buffer.concat(parts);
}

function header(
  query: Buffer,
  { rcode, answers, truncated, questions = 1 }: { rcode: number; answers: number; truncated: boolean; questions?: number },
): Buffer {
  const out = Buffer.alloc(12);
  query.copy(out, 0, 0, 2); // the id
  const opcode = (query[2]! >> 3) & 0x0f;
  const recursionDesired = query[2]! & 0x01;
  out[2] = 0x80 | (opcode << 3) | 0x04 | (truncated ? 0x02 : 0) | recursionDesired; // QR, AA, TC, RD
  out[3] = rcode & 0x0f;
  out.writeUInt16BE(questions, 4);
  out.writeUInt16BE(answers, 6);
  return out;
}

export async function startDnsServer(): Promise<DnsServer> {
  const records = new Map<string, string[]>();
  const queries: string[] = [];

  function answer(query: Buffer, transport: "udp" | "tcp"): Buffer | null {
    if (query.length < 12) return null;
    const question = readQuestion(query);
    if (question === null) return header(query, { rcode: FORMERR, answers: 0, truncated: false, questions: 0 });
    queries.push(`${question.name} ${question.type === TXT ? "TXT" : question.type}`);
    const values = records.get(question.name);
    if (values === undefined) return Buffer.concat([header(query, { rcode: NXDOMAIN, answers: 0, truncated: false }), question.raw]);
    const wanted = question.type === TXT || question.type === ANY ? values : [];
    const rrs = wanted.map((value) => {
      const rdata = txtRdata(value);
      const fixed = Buffer.alloc(12);
      fixed.writeUInt16BE(0xc00c, 0); // a pointer to the question's name
      fixed.writeUInt16BE(TXT, 2);
      fixed.writeUInt16BE(1, 4); // IN
      fixed.writeUInt32BE(60, 6);
      fixed.writeUInt16BE(rdata.length, 10);
      return Buffer.concat([fixed, rdata]);
    });
    const full = Buffer.concat([header(query, { rcode: 0, answers: rrs.length, truncated: false }), question.raw, ...rrs]);
    if (transport === "tcp" || full.length <= UDP_LIMIT) return full;
    return Buffer.concat([header(query, { rcode: 0, answers: 0, truncated: true }), question.raw]);
  }

  function udpSocket(): Socket {
    const socket = createSocket("udp4");
    socket.on("message", (message, remote) => {
      const reply = answer(message, "udp");
      if (reply) socket.send(reply, remote.port, remote.address);
    });
    return socket;
  }

  // RFC 7766: over TCP each message is preceded by its two-byte length; a client may send several.
  const connections = new Set<TcpSocket>();
  const tcp: Server = createServer((socket) => {
    connections.add(socket);
    socket.on("close", () => connections.delete(socket));
    let pending = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const message = pending.subarray(2, 2 + pending.readUInt16BE(0));
        pending = pending.subarray(2 + message.length);
        const reply = answer(message, "tcp");
        if (reply === null) {
          socket.destroy();
          return;
        }
        const length = Buffer.alloc(2);
        length.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([length, reply]));
      }
    });
    socket.on("error", () => socket.destroy());
  });

  // One port for both transports, as DNS expects; try again if TCP finds the UDP port taken.
  let port = 0;
  let udp = udpSocket();
  for (let attempt = 0; attempt < 20 && port === 0; attempt++) {
    if (attempt > 0) udp = udpSocket();
    await new Promise<void>((resolve, reject) => {
      udp.once("error", reject);
      udp.bind(0, "127.0.0.1", () => {
        udp.off("error", reject);
        resolve();
      });
    });
    const candidate = udp.address().port;
    const listening = await new Promise<boolean>((resolve) => {
      tcp.once("error", () => resolve(false));
      tcp.listen(candidate, "127.0.0.1", () => resolve(true));
    });
    if (listening) port = candidate;
    else await new Promise<void>((resolve) => udp.close(() => resolve()));
  }
  if (port === 0) throw new Error("no free port for the test DNS server");

  const bound = udp;
  return {
    port,
    nameserver: `127.0.0.1:${port}`,
    publish: (name, value) => records.set(normal(name), [...(records.get(normal(name)) ?? []), value]),
    queries,
    stop: async () => {
      await new Promise<void>((resolve) => bound.close(() => resolve()));
      for (const socket of connections) socket.destroy();
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    },
  };
}
