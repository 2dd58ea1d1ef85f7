// A second, independent reference for blockmesh's UnixFS CIDs: the JS UnixFS importer (the one
// Helia uses), configured to behave like kubo's `ipfs add` for each profile.
//
// Job on stdin (JSON):
//   {"inputs": [{"path": "/abs/file-or-dir", "profile": {"cid_version": 0|1, "raw_leaves": bool|null,
//     "chunk_size": int, "layout": "balanced"|"trickle", "max_links": int}}, ...]}
// Result on stdout (JSON): {"importer": {...name, version, node}, "cids": ["<root CID>", ...]}
// Any failure: a message on stderr and exit status 1, nothing on stdout.
//
// Blocks go to a throwaway in-memory store; nothing here opens a socket.

import { createReadStream } from 'node:fs'
import { lstat, readdir, readFile, readlink } from 'node:fs/promises'
import { join } from 'node:path'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced, trickle } from 'ipfs-unixfs-importer/layout'

// kubo's fixed trickle parameter (boxo importer/trickle: depthRepeat = 4).
const KUBO_TRICKLE_LAYER_REPEAT = 4
// kubo shards a directory once its links' name + CID bytes exceed this; the JS importer uses the
// same estimate ('links-bytes'). Sharded output is refused below: it is not what this checks.
const KUBO_SHARD_THRESHOLD_BYTES = 262144
const MAX_CHUNK_SIZE = 1048576 // boxo's block size limit for chunks
const MAX_INPUTS = 10000

class JobError extends Error {}

// The smallest blockstore the importer accepts: it only ever calls put(), so there is no get().
class MemoryStore {
  constructor () { this.blocks = new Map() }
  async put (cid, bytes) { this.blocks.set(cid.toString(), bytes); return cid }
}

function intField (profile, key, low, high) {
  const value = profile[key]
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new JobError(`profile field ${key} must be an integer in ${low}..${high}, got ${JSON.stringify(value)}`)
  }
  return value
}

// Map a profile onto importer options that reproduce kubo's choices for it.
function importerOptions (profile) {
  if (profile === null || typeof profile !== 'object') throw new JobError('profile must be an object')
  const cidVersion = intField(profile, 'cid_version', 0, 1)
  const chunkSize = intField(profile, 'chunk_size', 1, MAX_CHUNK_SIZE)
  const maxLinks = intField(profile, 'max_links', 2, 65536)
  const rawLeavesField = profile.raw_leaves ?? null
  if (rawLeavesField !== null && typeof rawLeavesField !== 'boolean') {
    throw new JobError('profile field raw_leaves must be a boolean or null')
  }
  // kubo: --cid-version 1 turns raw leaves on unless --raw-leaves says otherwise.
  const rawLeaves = rawLeavesField ?? cidVersion === 1
  let layout
  let leafType
  let reduceSingleLeafToSelf
  if (profile.layout === 'balanced') {
    layout = balanced({ maxChildrenPerNode: maxLinks })
    leafType = 'file' // boxo balanced: UnixFS "file" leaves when leaves are not raw
    reduceSingleLeafToSelf = true // boxo balanced: a one-chunk file is its leaf
  } else if (profile.layout === 'trickle') {
    layout = trickle({ maxChildrenPerNode: maxLinks, layerRepeat: KUBO_TRICKLE_LAYER_REPEAT })
    leafType = 'raw' // boxo trickle: UnixFS "raw" leaves when leaves are not raw blocks
    reduceSingleLeafToSelf = false // boxo trickle always writes a root above the leaves
  } else {
    throw new JobError(`profile field layout must be "balanced" or "trickle", got ${JSON.stringify(profile.layout)}`)
  }
  return {
    cidVersion,
    rawLeaves,
    leafType,
    reduceSingleLeafToSelf,
    chunker: fixedSize({ chunkSize }),
    layout,
    wrapWithDirectory: false,
    shardSplitThresholdBytes: KUBO_SHARD_THRESHOLD_BYTES,
    shardSplitStrategy: 'links-bytes',
    fieldOrder: 'links-first'
  }
}

// Candidates for one input, named under "root" (a root's own name never enters its CID).
// Dotfiles are skipped as `ipfs add -r` does without --hidden.
async function * candidates (path, name) {
  const info = await lstat(path)
  if (info.isSymbolicLink()) {
    yield { path: name, link: await readlink(path) }
  } else if (info.isDirectory()) {
    yield { path: name }
    const children = (await readdir(path)).filter(child => !child.startsWith('.'))
    for (const child of children) {
      yield * candidates(join(path, child), `${name}/${child}`)
    }
  } else if (info.isFile()) {
    yield { path: name, content: createReadStream(path) }
  } else {
    throw new JobError(`${path} is not a regular file, directory or symlink`)
  }
}

async function rootCid (path, options) {
  let root
  for await (const entry of importer(candidates(path, 'root'), new MemoryStore(), options)) {
    if (entry.path === 'root') root = entry
    if (entry.unixfs?.type === 'hamt-sharded-directory') {
      throw new JobError(`${path}: a directory reached the sharding threshold; only flat directories are compared`)
    }
  }
  if (root === undefined) throw new JobError(`${path}: the importer returned no root`)
  return root.cid.toString()
}

async function readStdin () {
  const parts = []
  for await (const part of process.stdin) parts.push(part)
  return Buffer.concat(parts).toString('utf8')
}

async function importerVersion () {
  const url = new URL('./node_modules/ipfs-unixfs-importer/package.json', import.meta.url)
  const meta = JSON.parse(await readFile(url, 'utf8'))
  return { name: meta.name, version: meta.version, node: process.version }
}

async function main () {
  let job
  try {
    job = JSON.parse(await readStdin())
  } catch (err) {
    throw new JobError(`job on stdin is not JSON: ${err.message}`)
  }
  const inputs = job?.inputs
  if (!Array.isArray(inputs) || inputs.length > MAX_INPUTS) {
    throw new JobError(`job needs "inputs": a list of at most ${MAX_INPUTS} entries`)
  }
  const cids = []
  for (const input of inputs) {
    if (typeof input?.path !== 'string' || input.path === '') throw new JobError('each input needs a "path" string')
    cids.push(await rootCid(input.path, importerOptions(input.profile)))
  }
  process.stdout.write(JSON.stringify({ importer: await importerVersion(), cids }) + '\n')
}

main().catch(err => {
  process.stderr.write(`js-importer: ${err instanceof JobError ? err.message : err.stack ?? err}\n`)
  process.exitCode = 1
})
