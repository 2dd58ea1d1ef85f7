"""Content and peer routing: the interface the node depends on, records, and the reprovider.

The Kademlia DHT lives in ``kad/``; everything else here talks to it only through
``api.ContentRouting`` so the data plane never imports the DHT directly.
"""

from blockmesh.data.routing.api import ContentRouting, Provider, RoutingError

__all__ = ["ContentRouting", "Provider", "RoutingError"]
