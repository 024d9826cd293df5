// Drives the `sealroom` command-line client (its documented scripting interface: secrets from
// SEALROOM_PASSWORD / SEALROOM_PASSPHRASE, the TOTP code on stdin after the JSON enrollment
// line) for the CLI ↔ browser interop test.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nextCode } from './harness.mjs';

const bin = () => /** @type {string} */ (process.env.SEALROOM_CLI_BIN);

function env(password) {
  return { ...process.env, SEALROOM_PASSWORD: password, SEALROOM_PASSPHRASE: password, SEALROOM_KDF_ROUNDS: '1000', NO_COLOR: '1' };
}

/** Runs the CLI with `args` in `home`; resolves with stdout, rejects on a non-zero exit. */
export function cli(home, args, password = home.password) {
  return new Promise((ok, fail) => {
    const child = spawn(bin(), ['--home', home.dir, ...args], { env: env(password), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) ok(out);
      else fail(new Error(`sealroom ${args.join(' ')} exited ${code}: ${err}${out}`));
    });
  });
}

/**
 * Starts the CLI with `args` in `home` and leaves it running: `lines` holds its stdout JSON
 * lines as they come, `line(pred)` resolves with the first one matching, `exit` resolves with
 * the exit code (killed after `timeout` ms).
 */
export function cliBackground(home, args, password = home.password, timeout = 120000) {
  const child = spawn(bin(), ['--home', home.dir, ...args], { env: env(password), stdio: ['ignore', 'pipe', 'pipe'] });
  const run = { child, out: '', err: '', lines: /** @type {any[]} */ ([]), waiters: /** @type {{pred: (o: any) => boolean, ok: (o: any) => void}[]} */ ([]) };
  child.stdout.on('data', (d) => {
    run.out += d;
    const lines = run.out.split('\n');
    for (const l of lines.slice(run.lines.length, -1)) {
      let o = null;
      try {
        o = JSON.parse(l);
      } catch {}
      run.lines.push(o);
      for (const w of [...run.waiters]) if (o && w.pred(o)) {
        run.waiters.splice(run.waiters.indexOf(w), 1);
        w.ok(o);
      }
    }
  });
  child.stderr.on('data', (d) => { run.err += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
  const exit = new Promise((ok) => child.on('exit', (code) => {
    clearTimeout(timer);
    for (const w of run.waiters) w.ok(null);
    ok(code);
  }));
  return {
    ...run,
    get output() { return `${run.err}${run.out}`; },
    exit,
    /** The first stdout JSON line for which `pred` holds (null if the CLI exits first). */
    line(pred) {
      const seen = run.lines.find((o) => o && pred(o));
      if (seen) return Promise.resolve(seen);
      if (child.exitCode !== null) return Promise.resolve(null);
      return new Promise((ok) => run.waiters.push({ pred, ok }));
    },
  };
}

/** Registers `username` with the CLI against `server`; returns its home (and the TOTP secret). */
export async function cliRegister(server, username, password) {
  const dir = mkdtempSync(join(tmpdir(), `sealroom-cli-${username}-`));
  let totpSecret = '';
  await new Promise((ok, fail) => {
    const child = spawn(bin(), ['--home', dir, '--json', 'register', '--server', server.addr, '--name', 'Carol CLI', '--email', `${username}@example.org`, '--username', username], { env: env(password), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let sent = false;
    child.stderr.on('data', (d) => { err += d; });
    child.stdout.on('data', async (d) => {
      out += d;
      const m = /"otpauth_uri"\s*:\s*"([^"]+)"/.exec(out);
      if (m && !sent) {
        sent = true;
        const secret = new URL(m[1].replace(/\\u0026/g, '&')).searchParams.get('secret');
        totpSecret = secret;
        child.stdin.write(`${await nextCode(secret)}\n`);
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) ok(undefined);
      else fail(new Error(`sealroom register exited ${code}: ${err}${out}`));
    });
  });
  return { dir, password, secret: totpSecret };
}

/** An empty home for a CLI device of an account made elsewhere (`sealroom link` needs one). */
export function cliHome(username, password) {
  return { dir: mkdtempSync(join(tmpdir(), `sealroom-cli-${username}-`)), password };
}
