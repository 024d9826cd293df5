// Test harness for the browser tests: a real sealroom-server on 127.0.0.1 with a temporary data
// folder (stopped by its pid), Debian's chromium through playwright-core (never a downloaded
// browser), RFC 6238 codes computed from the enrollment secret, and screenshots.
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));
export const repo = resolve(here, '../../..');
export const shots = process.env.SEALROOM_SCREENSHOTS ?? join(repo, 'target/web-screenshots');

/** Starts the server on a free port; resolves once it prints its URL. */
export async function startServer() {
  const bin = process.env.SEALROOM_SERVER_BIN ?? join(repo, 'target/debug/sealroom-server');
  const dir = mkdtempSync(join(tmpdir(), 'sealroom-web-'));
  // Below Linux's ephemeral range (32768–60999 by default): an outgoing connection of a test
  // running alongside never takes this port while the server is paused for a restart (and
  // then holds it in TIME_WAIT), which a port inside that range could not promise.
  const port = 20000 + Math.floor(Math.random() * 12000);
  const args = ['--listen', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data'), '--web-root', join(repo, 'web-client/dist')];
  const env = { ...process.env, SEALROOM_PBKDF2_ROUNDS: '1000', RUST_LOG: process.env.RUST_LOG ?? 'warn' };
  let child;
  let out = '';
  const spawnServer = async () => {
    child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    out = '';
    let err = '';
    child.stderr.on('data', (d) => { err += d; });
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`server did not start: ${out}${err}`)), 20000);
      child.stdout.on('data', (d) => {
        out += d;
        if (out.includes('certificate SHA-256 fingerprint')) {
          clearTimeout(timer);
          ok(undefined);
        }
      });
      child.on('exit', (code) => fail(new Error(`server exited ${code}: ${err}`)));
    });
  };
  const kill = async () => {
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((ok) => child.once('exit', ok));
    try {
      process.kill(/** @type {number} */ (child.pid), 'SIGTERM');
    } catch {}
    await exited;
  };
  await spawnServer();
  const fingerprint = /fingerprint \(self-signed\): ([0-9A-F:]+)/.exec(out)?.[1];
  return {
    url: `https://localhost:${port}/`,
    addr: `127.0.0.1:${port}`,
    port,
    dir,
    fingerprint,
    /** Stops the server (SIGTERM, by pid), keeping its data. */
    pause: kill,
    /** Starts it again on the same port and data. */
    resume: spawnServer,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
}

/** RFC 4648 base32. */
function base32(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of s.replace(/=+$/, '').toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, '0');
  const out = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

/** RFC 6238 (SHA-1, 6 digits, 30 s) for a time step. */
export function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 1_000_000).padStart(6, '0');
}

const lastStep = new Map();
/** A code the server has not accepted yet for this secret (it refuses a step used before). */
export async function nextCode(secret) {
  for (;;) {
    const now = Math.floor(Date.now() / 1000 / 30);
    const step = Math.max(now, (lastStep.get(secret) ?? -1) + 1);
    if (step <= now + 1) {
      lastStep.set(secret, step);
      return totp(secret, step);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** A code that is surely wrong now. */
export function wrongCode(secret) {
  const now = Math.floor(Date.now() / 1000 / 30);
  const valid = new Set([-1, 0, 1, 2].map((d) => totp(secret, now + d)));
  for (let i = 0; ; i++) {
    const c = String((123456 + i * 7919) % 1_000_000).padStart(6, '0');
    if (!valid.has(c)) return c;
  }
}

export async function screenshot(page, name) {
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}
