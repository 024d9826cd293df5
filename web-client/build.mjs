// Builds the web client into dist/: one esbuild bundle (app.js), the page, its stylesheet and icon.
// Plain files only: the server serves dist/ as static files under a strict CSP.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

const root = new URL('.', import.meta.url).pathname;
rmSync(`${root}dist`, { recursive: true, force: true });
mkdirSync(`${root}dist`, { recursive: true });
await build({
  entryPoints: [`${root}src/main.js`],
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  legalComments: 'external',
  outfile: `${root}dist/app.js`,
  logLevel: 'warning',
});
copyFileSync(`${root}index.html`, `${root}dist/index.html`);
copyFileSync(`${root}css/app.css`, `${root}dist/app.css`);
copyFileSync(`${root}favicon.svg`, `${root}dist/favicon.svg`);
console.log('web-client built into dist/');
