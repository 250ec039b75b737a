// tandem web demo: keeps the app shell (the page and its assets) so that a reload while offline
// still opens the page; documents themselves live in IndexedDB (y-indexeddb). Network first, so
// a new build is picked up as soon as the server answers; the cache is only the fallback.
const CACHE = 'tandem-shell-v1'

// Precache the page and the assets it names (their hashed names are read from the page itself).
self.addEventListener('install', event => {
  event.waitUntil((async () => {
    try {
      const cache = await caches.open(CACHE)
      const root = new URL('./', self.location.href).href
      const page = await fetch(root, { cache: 'no-cache' })
      if (page.ok) {
        const html = await page.clone().text()
        await cache.put(root, page)
        const assets = Array.from(html.matchAll(/(?:src|href)="([^"]+)"/g), m => new URL(m[1], root).href)
          .filter(url => url.startsWith(self.location.origin))
        await Promise.all(assets.map(url => cache.add(url).catch(() => {})))
      }
    } catch { /* offline at install: the fetch handler fills the cache later */ }
    await self.skipWaiting()
  })())
})
self.addEventListener('activate', event => event.waitUntil(self.clients.claim()))

self.addEventListener('fetch', event => {
  const request = event.request
  const url = new URL(request.url)
  if (request.method !== 'GET' || url.origin !== self.location.origin) return
  if (/\/(api|sync|health|metrics|stats)(\/|$)/.test(url.pathname)) return
  event.respondWith((async () => {
    const cache = await caches.open(CACHE)
    try {
      const response = await fetch(request)
      if (response.ok) cache.put(request, response.clone()).catch(() => {})
      return response
    } catch (err) {
      const cached = await cache.match(request, { ignoreSearch: true }) ||
        (request.mode === 'navigate' ? await cache.match(new URL('./', self.location.href).href) : undefined)
      if (cached) return cached
      throw err
    }
  })())
})
