"""Kademlia DHT (go-libp2p-kad-dht compatible): engines without I/O plus the Host adapter."""
