// Hocuspocus (@hocuspocus/server) with its defaults and no extensions, on 127.0.0.1 and the port
// in $PORT (0: a free one). Prints "listening on http://ADDR" when ready.
import { Server } from '@hocuspocus/server'

const server = new Server({ address: '127.0.0.1', port: Number(process.env.PORT || 0), quiet: true })
await server.listen()
const { address, port } = server.address
console.log(`listening on http://${address}:${port}`)
