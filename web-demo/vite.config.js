import { defineConfig } from 'vite'

// The build is committed (web-demo/dist) so that `tandem serve` works on a fresh clone with no Node;
// check-dist.sh rebuilds and compares. Keep the output deterministic: content-hashed names, no
// timestamps, no absolute paths.
export default defineConfig({
  base: './',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    target: 'es2020',
    chunkSizeWarningLimit: 1000
  },
  server: {
    // `npm run dev` against a locally running `tandem serve` (port 8080).
    proxy: {
      '/sync': { target: 'ws://127.0.0.1:8080', ws: true },
      '/hocuspocus': { target: 'ws://127.0.0.1:8080', ws: true },
      '/api': 'http://127.0.0.1:8080',
      '/health': 'http://127.0.0.1:8080'
    }
  }
})
