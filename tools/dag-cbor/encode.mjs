// A reference for blockmesh's dag-cbor CIDs: the JS @ipld/dag-cbor codec (the one Helia uses)
// encodes documents described in JSON and reports each block's bytes and CIDv1 (sha2-256).
//
// Job on stdin (JSON): {"documents": [<value>, ...]}, each value in a tagged form that JSON can
// carry without loss:
//   null | true | false
//   {"int": "<decimal>"}            an integer (a BigInt outside JS's safe range)
//   {"float": "<16 hex digits>"}    the IEEE 754 binary64 bits, big-endian
//   {"string": "..."}  {"bytes": "<hex>"}  {"link": "<CID>"}
//   {"list": [<value>, ...]}  {"map": [["<key>", <value>], ...]}
// Result on stdout (JSON): {"codec": {name, version, node}, "blocks": [{"cid", "hex"}, ...]}
// Any failure: a message on stderr and exit status 1, nothing on stdout.

import { readFile } from 'node:fs/promises'
import * as dagCbor from '@ipld/dag-cbor'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'

const MAX_DOCUMENTS = 10000
const MAX_DEPTH = 256

class JobError extends Error {}

function hexBytes (hex) {
  if (typeof hex !== 'string' || !/^([0-9a-f]{2})*$/.test(hex)) throw new JobError(`not lowercase hex: ${JSON.stringify(hex)}`)
  return Uint8Array.from(Buffer.from(hex, 'hex'))
}

function float64 (hex) {
  const bytes = hexBytes(hex)
  if (bytes.length !== 8) throw new JobError(`a float needs 8 bytes, got ${bytes.length}`)
  const value = new DataView(bytes.buffer).getFloat64(0, false)
  // The codec writes a JS number that is a safe integer (|n| < 2**53, -0 included) as a CBOR
  // integer, so such a float cannot be described to it; refuse rather than compare another value.
  if (Number.isSafeInteger(value)) throw new JobError(`float ${value} is a safe integer: JS encodes it as an integer`)
  return value
}

function build (node, depth) {
  if (depth > MAX_DEPTH) throw new JobError(`document nested deeper than ${MAX_DEPTH}`)
  if (node === null || node === true || node === false) return node
  if (typeof node !== 'object' || Array.isArray(node)) throw new JobError(`not a tagged value: ${JSON.stringify(node)}`)
  const tags = Object.keys(node)
  if (tags.length !== 1) throw new JobError(`a tagged value has one key, got ${JSON.stringify(tags)}`)
  const [tag] = tags
  const body = node[tag]
  switch (tag) {
    case 'int': {
      if (typeof body !== 'string' || !/^-?[0-9]+$/.test(body)) throw new JobError(`bad int ${JSON.stringify(body)}`)
      const big = BigInt(body)
      return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big
    }
    case 'float': return float64(body)
    case 'string':
      if (typeof body !== 'string') throw new JobError('a string value needs a string')
      return body
    case 'bytes': return hexBytes(body)
    case 'link': return CID.parse(body)
    case 'list':
      if (!Array.isArray(body)) throw new JobError('a list value needs an array')
      return body.map(item => build(item, depth + 1))
    case 'map': {
      if (!Array.isArray(body)) throw new JobError('a map value needs an array of pairs')
      const out = {}
      for (const pair of body) {
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') throw new JobError('a map entry is ["key", value]')
        if (Object.hasOwn(out, pair[0])) throw new JobError(`duplicate map key ${JSON.stringify(pair[0])}`)
        // defineProperty, not assignment: a "__proto__" key must become a key, not a prototype
        Object.defineProperty(out, pair[0], { value: build(pair[1], depth + 1), enumerable: true, writable: true, configurable: true })
      }
      return out
    }
    default: throw new JobError(`unknown tag ${JSON.stringify(tag)}`)
  }
}

async function block (document) {
  const bytes = dagCbor.encode(build(document, 0))
  const cid = CID.createV1(dagCbor.code, await sha256.digest(bytes))
  return { cid: cid.toString(), hex: Buffer.from(bytes).toString('hex') }
}

async function readStdin () {
  const parts = []
  for await (const part of process.stdin) parts.push(part)
  return Buffer.concat(parts).toString('utf8')
}

async function codecVersion () {
  const url = new URL('./node_modules/@ipld/dag-cbor/package.json', import.meta.url)
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
  const documents = job?.documents
  if (!Array.isArray(documents) || documents.length > MAX_DOCUMENTS) {
    throw new JobError(`job needs "documents": a list of at most ${MAX_DOCUMENTS} values`)
  }
  const blocks = []
  for (const [index, document] of documents.entries()) {
    try {
      blocks.push(await block(document))
    } catch (err) {
      throw new JobError(`document ${index}: ${err.message}`)
    }
  }
  process.stdout.write(JSON.stringify({ codec: await codecVersion(), blocks }) + '\n')
}

main().catch(err => {
  process.stderr.write(`dag-cbor: ${err instanceof JobError ? err.message : err.stack ?? err}\n`)
  process.exitCode = 1
})
