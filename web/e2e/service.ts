/**
 * What the browser tests run against: the real orgmail service (`orgmail serve`) on a free loopback
 * port with its own data folder, an aiosmtpd relay and a DNS server on loopback, and Debian's chromium.
 */

import { spawn, execFileSync } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Input, Output } from "@orgmail/client";
import { chromium } from "playwright-core";
import type { BrowserContext, Page } from "playwright-core";
import { startDnsServer } from "./dnsServer";
import type { DnsServer } from "./dnsServer";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = join(REPO, "test-artifacts", "e2e");
const VENV_BIN = process.env.ORGMAIL_VENV_BIN ?? join(REPO, ".venv", "bin");
const CHROMIUM = process.env.ORGMAIL_CHROMIUM ?? "/usr/bin/chromium";

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port"))));
    });
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, process: ChildProcess, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (process.exitCode !== null) throw new Error(`${what} exited with code ${process.exitCode}`);
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within ${timeoutMs} ms`);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolveOpen) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.end();
      resolveOpen(true);
    });
    socket.once("error", () => resolveOpen(false));
  });
}

async function stop(child: ChildProcess | undefined) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

export interface Demo {
  orgId: string;
  apiKey: string;
  domain: string;
  mailbox: { id: string; address: string; password: string };
}

export interface Stack {
  baseUrl: string;
  dataDir: string;
  demo: Demo;
  /** Everything the SMTP relay printed: the messages it received. */
  relayOutput: () => string;
  /** The service's only nameserver: `domains/verify` looks records up here. */
  dns: DnsServer;
  /** A direct API call, to check what the browser did. */
  api: <P extends string>(path: P, body: Input<P>) => Promise<{ status: number; body: Output<P> }>;
  python: (code: string, ...args: string[]) => string;
  stop: () => Promise<void>;
}

export async function startStack(): Promise<Stack> {
  const consoleIndex = join(REPO, "src/orgmail/console/index.html");
  if (!existsSync(consoleIndex)) throw new Error("The console is not built: run `npm run build` in web/ (or `make web`).");
  const dataDir = mkdtempSync(join(tmpdir(), "orgmail-e2e-"));
  const env = { ...process.env, ORGMAIL_DATA_DIR: dataDir, PYTHONUNBUFFERED: "1" };
  const dns = await startDnsServer();

  const smtpPort = await freePort();
  let relayText = "";
  const relay = spawn(join(VENV_BIN, "python"), ["-m", "aiosmtpd", "-n", "-l", `127.0.0.1:${smtpPort}`], { env, stdio: ["ignore", "pipe", "pipe"] });
  relay.stdout!.on("data", (chunk: Buffer) => (relayText += chunk.toString()));
  relay.stderr!.on("data", (chunk: Buffer) => (relayText += chunk.toString()));
  await waitFor("the SMTP relay", () => portOpen(smtpPort), relay);

  const demo = JSON.parse(execFileSync(join(VENV_BIN, "orgmail"), ["demo"], { env, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })) as Demo;

  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  let serviceLog = "";
  const service = spawn(join(VENV_BIN, "orgmail"), ["serve", "--host", "127.0.0.1", "--port", String(port)], {
    env: {
      ...env,
      ORGMAIL_RELAY_URL: `smtp://127.0.0.1:${smtpPort}`,
      ORGMAIL_DNS_NAMESERVERS: dns.nameserver,
      // The tests' webhook endpoint listens on loopback, which the service refuses by default (SSRF).
      ORGMAIL_WEBHOOK_ALLOW_PRIVATE: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  service.stdout!.on("data", (chunk: Buffer) => (serviceLog += chunk.toString()));
  service.stderr!.on("data", (chunk: Buffer) => (serviceLog += chunk.toString()));
  try {
    await waitFor("orgmail serve", async () => (await fetch(`${baseUrl}/healthz`)).ok, service);
  } catch (error) {
    await stop(relay);
    await dns.stop();
    throw new Error(`${(error as Error).message}\n${serviceLog}`, { cause: error });
  }

  return {
    baseUrl,
    dataDir,
    demo,
    relayOutput: () => relayText,
    dns,
    api: async (path, body) => {
      const response = await fetch(`${baseUrl}${path}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${demo.apiKey}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      return { status: response.status, body: await response.json() };
    },
    python: (code, ...args) => execFileSync(join(VENV_BIN, "python"), ["-c", code, ...args], { env, encoding: "utf8" }),
    stop: async () => {
      await stop(service);
      await stop(relay);
      await dns.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Debian's chromium through playwright-core, with a fresh profile; nothing is downloaded. */
export async function launchBrowser(): Promise<{ context: BrowserContext; close: () => Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), "orgmail-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
    viewport: { width: 1400, height: 1000 },
    permissions: ["clipboard-read", "clipboard-write"],
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export interface Session {
  stack: Stack;
  page: Page;
  /** Uncaught errors of the page's scripts: a test file ends by expecting none. */
  pageErrors: string[];
  close: () => Promise<void>;
}

/** What each browser test file starts in its `beforeAll`: the stack, and a browser page on it. */
export async function startSession(): Promise<Session> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const stack = await startStack();
  let browser: Awaited<ReturnType<typeof launchBrowser>>;
  try {
    browser = await launchBrowser();
  } catch (error) {
    await stack.stop();
    throw error;
  }
  const page = browser.context.pages()[0] ?? (await browser.context.newPage());
  const pageErrors: string[] = [];
  page.on("pageerror", (error) => pageErrors.push(error.message));
  return {
    stack,
    page,
    pageErrors,
    close: async () => {
      await browser.close();
      await stack.stop();
    },
  };
}

/** Opens the console as a person does: the key form, then the console itself. */
export async function openConsole(page: Page, stack: Stack): Promise<void> {
  await page.goto(stack.baseUrl + "/console/");
  await page.getByLabel("API key", { exact: true }).fill(stack.demo.apiKey);
  await page.getByRole("button", { name: "Open console" }).click();
  await page.getByRole("heading", { name: "orgmail console" }).waitFor();
}
