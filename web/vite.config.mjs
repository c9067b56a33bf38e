import { resolve } from 'node:path';
import { defineConfig } from 'vite';

// Two pages: the admin UI (served at /) and the customer portal (served at /portal).
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  build: {
    outDir: resolve(import.meta.dirname, 'dist'),
    emptyOutDir: true,
    sourcemap: true,
    rollupOptions: {
      input: {
        admin: resolve(import.meta.dirname, 'index.html'),
        portal: resolve(import.meta.dirname, 'portal.html'),
      },
    },
  },
  logLevel: 'warn',
});
