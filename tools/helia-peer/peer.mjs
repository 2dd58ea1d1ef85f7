// A loopback-only Helia node for blockmesh's interop tests (driven by
// src/blockmesh/reference/helia.py).
//
// It speaks exactly what blockmesh speaks: TCP on 127.0.0.1, Noise, Yamux, identify and
// Bitswap. Nothing else is configured: no bootstrap list, no mDNS, no DHT, no relay, no
// AutoNAT or UPnP, no HTTP gateways or delegated routing, memory block- and datastore.
//
// Protocol: one JSON object per line on stdout. On start it prints
//   {"ready": true, "peer_id": ..., "addrs": [...], "versions": {...}}
// then answers one request per stdin line with {"ok": true, "result": ...} or
// {"ok": false, "error": "..."}:
//   {"op": "add", "path": FILE}                          -> CID (Helia's importer defaults)
//   {"op": "connect", "addr": MULTIADDR}                 -> null
//   {"op": "fetch", "cid": CID, "dest": FILE, "timeout_ms": N} -> {"bytes": N}
//   {"op": "peers"}                                      -> [peer id, ...]
// It stops when stdin closes or on SIGTERM/SIGINT.

import { createReadStream, createWriteStream, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { once } from 'node:events'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { withBitswap } from '@helia/bitswap'
import { withLibp2pLight } from '@helia/libp2p'
import { unixfs } from '@helia/unixfs'
import { identify } from '@libp2p/identify'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createHeliaLight } from 'helia'
import { CID } from 'multiformats/cid'

// The packages' own manifests are not exported, so read them from node_modules directly.
const VERSIONS = Object.fromEntries(
  ['helia', 'libp2p', '@chainsafe/libp2p-yamux', '@chainsafe/libp2p-noise', '@helia/bitswap']
    .map((name) => {
      const manifest = new URL(`./node_modules/${name}/package.json`, import.meta.url)
      return [name, JSON.parse(readFileSync(manifest, 'utf8')).version]
    })
)

function reply (object) {
  process.stdout.write(JSON.stringify(object) + '\n')
}

const helia = withBitswap(withLibp2pLight(createHeliaLight(), {
  addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify() }
}))
await helia.start()
const fs = unixfs(helia)

let stopping = null
function stop () {
  stopping ??= helia.stop().finally(() => process.exit(0))
  return stopping
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)

const ops = {
  async add ({ path }) {
    const cid = await fs.addByteStream(createReadStream(path))
    return cid.toString()
  },
  async connect ({ addr }) {
    await helia.libp2p.dial(multiaddr(addr))
    return null
  },
  async fetch ({ cid, dest, timeout_ms: timeoutMs }) {
    const out = createWriteStream(dest)
    let bytes = 0
    try {
      for await (const chunk of fs.cat(CID.parse(cid), { signal: AbortSignal.timeout(timeoutMs) })) {
        bytes += chunk.byteLength
        if (!out.write(chunk)) await once(out, 'drain')
      }
    } finally {
      out.end()
      await once(out, 'close')
    }
    return { bytes }
  },
  async peers () {
    return helia.libp2p.getConnections().map((c) => c.remotePeer.toString())
  }
}

reply({
  ready: true,
  peer_id: helia.libp2p.peerId.toString(),
  addrs: helia.libp2p.getMultiaddrs().map((a) => a.toString()),
  versions: VERSIONS
})

// Requests run one at a time, in order, as the Python side sends them.
for await (const line of createInterface({ input: process.stdin })) {
  let request
  try {
    request = JSON.parse(line)
    const op = ops[request.op]
    if (op === undefined) throw new Error(`unknown op ${JSON.stringify(request.op)}`)
    reply({ ok: true, result: await op(request) })
  } catch (err) {
    reply({ ok: false, error: `${err.name ?? 'Error'}: ${err.message ?? err}` })
  }
}
await stop()
