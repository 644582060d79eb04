#!/usr/bin/env node
// The device hub's web console, in headless Chromium (Debian's, driven by playwright-core).
//
//   node web/console-test.mjs --url http://127.0.0.1:5000/ --out DIR [--device sim-0002]
//        [--command led] [--param 00ff88]... [--expect-devices N] [--filter-stream]
//        [--chromium /usr/bin/chromium] [--timeout 30000] [--deadline 120000]
//        [--screenshot console.png]
//
// Loads the page and waits for it to connect; waits until the device table lists at least
// --expect-devices devices (default 1) and, with --device, that device's row. With --device it
// then picks the device as the target, picks --command (default `led`), fills its parameters
// (--param, once per parameter; `led` gets a fresh random colour when none is given), clicks
// Send, and waits for the live stream to show the device's `<id>:applied=<command line>` (and,
// for `led`, for the device's row to show the new colour in its readings). Every check is on
// the page's DOM. Saves a screenshot into --out and prints one JSON object on stdout:
// {"ok":true,...} and exit 0, or {"ok":false,"error":...} and exit 1 (with a screenshot
// `failure.png` when the page got that far). Console errors and uncaught exceptions in the
// page fail the run and are reported in `consoleErrors`. Each wait is bounded by --timeout, the
// whole run by --deadline. Exit 2: bad arguments.
import { mkdirSync } from "node:fs";
import { resolve, join } from "node:path";
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { chromium } from "playwright-core";

const started = Date.now();
const since = () => Date.now() - started;

function usage(message) {
  process.stderr.write(`console-test: ${message}\n`);
  process.stderr.write("usage: node web/console-test.mjs --url URL --out DIR [--device ID] [--command NAME] [--param VALUE]... [--expect-devices N] [--filter-stream] [--chromium PATH] [--timeout MS] [--deadline MS] [--screenshot FILE]\n");
  process.exit(2);
}

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      url: { type: "string" },
      out: { type: "string" },
      device: { type: "string" },
      command: { type: "string", default: "led" },
      param: { type: "string", multiple: true, default: [] },
      "expect-devices": { type: "string", default: "1" },
      "filter-stream": { type: "boolean", default: false },
      chromium: { type: "string", default: process.env.SPECWIRE_CHROMIUM || "/usr/bin/chromium" },
      timeout: { type: "string", default: "30000" },
      deadline: { type: "string", default: "120000" },
      screenshot: { type: "string", default: "console.png" },
    },
    strict: true,
  }));
} catch (error) {
  usage(error.message);
}
if (!options.url) usage("--url is required");
if (!options.out) usage("--out is required");
const expectDevices = Number(options["expect-devices"]);
const timeout = Number(options.timeout);
if (!Number.isInteger(expectDevices) || expectDevices < 0) usage("--expect-devices: a whole number");
if (!Number.isFinite(timeout) || timeout <= 0) usage("--timeout: milliseconds above 0");
const deadline = Number(options.deadline);
if (!Number.isFinite(deadline) || deadline <= 0) usage("--deadline: milliseconds above 0");
const device = options.device;
const params = [...options.param];
if (device && options.command === "led" && params.length === 0) params.push(randomBytes(3).toString("hex"));
const commandLine = [options.command, ...params].join(":");
const out = resolve(options.out);
mkdirSync(out, { recursive: true });

const result = {
  ok: false,
  url: options.url,
  chromium: options.chromium,
  title: null,
  devicesListed: null,
  device: device || null,
  row: null,
  sent: null,
  applied: null,
  rowAfter: null,
  screenshot: null,
  consoleErrors: [],
  streamErrors: [],
  timingsMs: {},
};
const mark = (name) => { result.timingsMs[name] = since(); };

let browser;
let page;
let step = "launch Chromium";

// A page whose renderer is stuck can leave a browser call unanswered past its own timeout;
// the deadline ends the run all the same (exiting closes Chromium: playwright kills it on exit,
// and it ends by itself when its pipe to this process closes).
setTimeout(() => {
  result.error = `${step}: the run did not finish within --deadline ${deadline} ms (is the page stuck?)`;
  mark("total");
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(1);
}, deadline).unref();
try {
  browser = await chromium.launch({
    executablePath: options.chromium,
    headless: true,
    timeout,
    // Debian's Chromium as root needs --no-sandbox; the rest keep it off the network
    // (a closed network refuses its background connections, loudly).
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
  mark("launched");
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(timeout);
  page.on("console", (message) => {
    if (message.type() === "error") result.consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => result.consoleErrors.push("uncaught: " + error.message));

  step = `load ${options.url}`;
  const response = await page.goto(options.url, { waitUntil: "load", timeout });
  if (!response || !response.ok()) throw new Error(`HTTP ${response ? response.status() : "no response"}`);
  result.title = await page.title();
  if (result.title !== "specwire device console") throw new Error(`unexpected title ${JSON.stringify(result.title)}`);
  mark("loaded");

  step = "wait for the page's WebSocket to connect";
  await page.waitForSelector("#status.up", { timeout });
  mark("connected");

  step = `wait for the command registry in #command`;
  await page.waitForFunction(() => document.querySelectorAll("#command option").length > 0, null, { timeout });

  if (device) {
    step = `wait for the row of device ${device}`;
    const row = page.locator(`#devices tbody tr[data-device="${device}"]`);
    await row.waitFor({ state: "attached", timeout });
    result.row = await row.locator("td").allTextContents();
    if (result.row[0] !== device) throw new Error(`the row's first cell is ${JSON.stringify(result.row[0])}, not ${device}`);
    mark("deviceRow");
  }

  step = `wait for at least ${expectDevices} device rows`;
  await page.waitForFunction(
    (n) => document.querySelectorAll("#devices tbody tr").length >= n,
    expectDevices,
    { timeout, polling: 100 },
  );
  result.devicesListed = await page.locator("#devices tbody tr").count();
  result.countsText = await page.locator("#counts").textContent();
  mark("devicesListed");

  if (device) {
    if (options["filter-stream"]) {
      step = "filter the live stream";
      await page.fill("#stream-filter", device + ":");
      mark("filtered");
    }
    step = `pick ${device} as the target`;
    await page.selectOption("#target", device);
    mark("targetPicked");
    step = `pick the command ${options.command}`;
    await page.selectOption("#command", options.command);
    step = "fill the command's parameters";
    const inputs = page.locator("#parameters input");
    const count = await inputs.count();
    if (count < params.length) throw new Error(`${options.command} has ${count} parameter inputs, ${params.length} values given`);
    for (let i = 0; i < params.length; i++) await inputs.nth(i).fill(params[i]);
    mark("filled");

    // Watch the stream from before the click, so a line is seen even when many others push
    // it off screen before a poll would look.
    const needle = `${device}:applied=${commandLine}`;
    await page.evaluate((needle) => {
      window.__specwireSeen = [];
      const stream = document.getElementById("stream");
      const look = (node) => { if (node.textContent.includes(needle)) window.__specwireSeen.push(node.textContent); };
      stream.querySelectorAll("div").forEach(look);
      new MutationObserver((records) => records.forEach((r) => r.addedNodes.forEach(look)))
        .observe(stream, { childList: true });
    }, needle);

    step = "click Send";
    await page.click("#send");
    mark("clicked");
    result.sent = `cmd:${device}:${commandLine}`;
    step = `wait for the stream's line for what was sent (${result.sent})`;
    await page.waitForFunction(
      (sent) => [...document.querySelectorAll("#stream div.sent")].some((line) => line.textContent.includes(sent)),
      result.sent,
      { timeout },
    );
    mark("sent");

    step = `wait for the live stream to show ${needle}`;
    await page.waitForFunction(() => window.__specwireSeen.length > 0, null, { timeout, polling: 50 });
    result.applied = (await page.evaluate(() => window.__specwireSeen[0])).replace(/^.*?\s\s/, "");
    mark("applied");

    if (options.command === "led" && params.length === 1) {
      step = `wait for ${device}'s row to show led=${params[0]}`;
      await page.waitForFunction(
        ({ device, colour }) => {
          const row = document.querySelector(`#devices tbody tr[data-device="${device}"]`);
          return row && row.cells[1].textContent.includes(`led=${colour}`);
        },
        { device, colour: params[0] },
        { timeout, polling: 100 },
      );
      result.rowAfter = await page.locator(`#devices tbody tr[data-device="${device}"] td`).allTextContents();
      mark("rowUpdated");
    }
  }

  result.streamErrors = await page.locator("#stream div.error").allTextContents();
  step = "take the screenshot";
  result.screenshot = join(out, options.screenshot);
  await page.screenshot({ path: result.screenshot });
  mark("screenshot");

  if (result.consoleErrors.length) throw new Error(`the page logged ${result.consoleErrors.length} console error(s)`);
  if (result.streamErrors.length) throw new Error(`the live stream shows ${result.streamErrors.length} error line(s)`);
  result.ok = true;
} catch (error) {
  result.error = `${step}: ${error.message.split("\n")[0]}`;
  if (page) {
    try {
      result.streamErrors = await page.locator("#stream div.error").allTextContents();
      result.failureScreenshot = join(out, "failure.png");
      await page.screenshot({ path: result.failureScreenshot, timeout: 5000 });
    } catch { /* the page is gone */ }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
}
mark("total");
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(result.ok ? 0 : 1);
