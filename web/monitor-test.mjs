#!/usr/bin/env node
// The uart gateway's WebSocket monitor, read by a page in headless Chromium (Debian's, driven
// by playwright-core): what a dashboard in a browser would get.
//
//   node web/monitor-test.mjs --url ws://127.0.0.1:50011/ [--count 20] [--chromium PATH]
//        [--timeout 30000]
//
// Loads a blank page, opens `new WebSocket(--url)` in it and collects the first --count text
// messages, each parsed with JSON.parse in the page. Prints one JSON object on stdout:
// {"ok":true,"messages":[...]} and exit 0, or {"ok":false,"error":...} and exit 1. The caller
// checks the messages against the monitor schema. Exit 2: bad arguments.
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      url: { type: "string" },
      count: { type: "string", default: "20" },
      chromium: { type: "string", default: process.env.SPECWIRE_CHROMIUM || "/usr/bin/chromium" },
      timeout: { type: "string", default: "30000" },
    },
    strict: true,
  }));
} catch (error) {
  process.stderr.write(`monitor-test: ${error.message}\n`);
  process.exit(2);
}
const count = Number(options.count);
const timeout = Number(options.timeout);
if (!options.url || !Number.isInteger(count) || count < 1 || !(timeout > 0)) {
  process.stderr.write("usage: node web/monitor-test.mjs --url ws://HOST:PORT/ [--count N] [--chromium PATH] [--timeout MS]\n");
  process.exit(2);
}

const result = { ok: false, messages: [], consoleErrors: [] };
// Whatever happens in the browser, the run ends.
setTimeout(() => {
  result.error = `no ${count} messages within ${2 * timeout} ms`;
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(1);
}, 2 * timeout).unref();

let browser;
try {
  browser = await chromium.launch({
    executablePath: options.chromium,
    headless: true,
    timeout,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage();
  page.on("pageerror", (error) => result.consoleErrors.push("uncaught: " + error.message));
  result.messages = await page.evaluate(({ url, count, timeout }) => new Promise((resolve, reject) => {
    const messages = [];
    const socket = new WebSocket(url);
    const timer = setTimeout(() => reject(new Error(`${messages.length} of ${count} messages in ${timeout} ms`)), timeout);
    socket.onmessage = (event) => {
      messages.push(JSON.parse(event.data));
      if (messages.length === count) {
        clearTimeout(timer);
        socket.close(1000, "enough");
        resolve(messages);
      }
    };
    socket.onerror = () => { clearTimeout(timer); reject(new Error(`the WebSocket to ${url} failed`)); };
    socket.onclose = (event) => {
      if (messages.length < count) { clearTimeout(timer); reject(new Error(`closed (${event.code}) after ${messages.length} messages`)); }
    };
  }), { url: options.url, count, timeout });
  result.ok = true;
} catch (error) {
  result.error = error.message;
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(result.ok ? 0 : 1);
