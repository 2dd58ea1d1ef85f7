"""The IPFS HTTP gateway (path, trustless and subdomain): request planning in pure functions
(`request`, `ranges`, `sniff`), DAG walks over local or Bitswap blocks (`walk`, `blocks`), the
engine that plans each response (`handler`) and the HTTP/1.1 adapter (`server`)."""
