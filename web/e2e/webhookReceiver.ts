/**
 * A webhook endpoint on loopback for the browser tests: it records every POST and answers with the
 * statuses it was told to (then 200), and checks a POST's Standard Webhooks signature with a secret,
 * as a receiver would: base64 HMAC-SHA256, keyed by the secret's bytes, of "id.timestamp.body".
 */

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

export interface ReceivedPost {
  path: string;
  headers: Record<string, string>;
  body: string;
  /** What the endpoint answered. */
  status: number;
}

export interface WebhookReceiver {
  url: (path: string) => string;
  posts: ReceivedPost[];
  /** Answer the next POSTs with these statuses, then 200 again. */
  answerNext: (...statuses: number[]) => void;
  stop: () => Promise<void>;
}

export function signatureIsValid(post: ReceivedPost, secret: string): boolean {
  const id = post.headers["webhook-id"];
  const timestamp = post.headers["webhook-timestamp"];
  const signatures = post.headers["webhook-signature"];
  if (!id || !timestamp || !signatures || !secret.startsWith("whsec_")) return false;
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${timestamp}.${post.body}`).digest();
  // The header may carry several space-separated signatures (key rotation); one valid v1 is enough.
  return signatures.split(" ").some((entry) => {
    const [version, value] = entry.split(",", 2);
    const given = Buffer.from(value ?? "", "base64");
    return version === "v1" && given.length === expected.length && timingSafeEqual(given, expected);
  });
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const posts: ReceivedPost[] = [];
  const answers: number[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const status = answers.shift() ?? 200;
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(request.headers)) headers[name] = Array.isArray(value) ? value.join(", ") : (value ?? "");
      posts.push({ path: request.url ?? "/", headers, body: Buffer.concat(chunks).toString("utf8"), status });
      response.writeHead(status, { "Content-Type": "text/plain" });
      response.end(status < 300 ? "ok" : "try again later");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("the webhook receiver has no port");
  return {
    url: (path) => `http://127.0.0.1:${address.port}${path}`,
    posts,
    answerNext: (...statuses) => answers.push(...statuses),
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
