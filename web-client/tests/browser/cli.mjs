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

/** Registers `username` with the CLI against `server`; returns its home. */
export async function cliRegister(server, username, password) {
  const dir = mkdtempSync(join(tmpdir(), `sealroom-cli-${username}-`));
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
  return { dir, password };
}
