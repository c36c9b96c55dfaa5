// The web UI: a static single-page app built into dist/ui and served by the API at /ui.
// It talks to the API through the same typed client as the CLI and the worker.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  root: here('.'),
  base: '/ui/',
  resolve: {
    alias: [
      { find: '@tagflow/client', replacement: here('../../libs/client/src/index.ts') },
      // Pure modules of the domain (the index also holds Node-only ones).
      { find: /^@tagflow\/domain\/(.*)\.js$/, replacement: `${here('../../libs/domain/src')}/$1.ts` },
    ],
  },
  oxc: { jsx: { runtime: 'automatic' } },
  build: {
    outDir: here('../../dist/ui'),
    emptyOutDir: true,
    // The graph library is most of the bundle; one chunk keeps the first load to two requests.
    chunkSizeWarningLimit: 1024,
    // No source maps: the API serves this directory to anyone.
    sourcemap: false,
    rolldownOptions: {
      // React libraries mark modules "use client" for server components; a browser bundle has none.
      onLog(level, log, handler) {
        if (log.code !== 'MODULE_LEVEL_DIRECTIVE') handler(level, log);
      },
    },
  },
  logLevel: 'warn',
});
