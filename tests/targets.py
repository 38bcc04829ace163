"""The Redis the tests run against: one node (the default) or a Redis Cluster.

``PYASYNQ_TEST_TOPOLOGY=cluster`` (``make test-cluster``) runs the functional suites on a
real cluster of three masters; the fixtures in ``conftest.py`` build their clients here,
and tests that make their own client to the test Redis use :func:`sync_client` /
:func:`async_client` so that it fits either topology.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import ClusterNode, RedisCluster

from pyasynq.connection import ClusterOptions, parse_url

CLUSTER = os.environ.get("PYASYNQ_TEST_TOPOLOGY", "single") == "cluster"


class WholeCluster(RedisCluster):
    """A RedisCluster whose keyspace-wide reads cover every node. redis-py 8 sends
    DBSIZE and KEYS to one node and PUBSUB NUMSUB to a random one, so ``r.dbsize() == 0``
    would check a third of the keyspace; here they ask every primary (every node, for
    the subscriber count, which is per node) and add the answers up."""

    def dbsize(self, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", self.PRIMARIES)
        return super().dbsize(**kwargs)

    def keys(self, pattern: Any = "*", **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", self.PRIMARIES)
        return super().keys(pattern, **kwargs)

    def pubsub_numsub(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("target_nodes", self.ALL_NODES)
        return super().pubsub_numsub(*args, **kwargs)


def cluster_options(url: str) -> ClusterOptions:
    opts = parse_url(url)
    assert isinstance(opts, ClusterOptions), f"not a cluster URL: {url}"
    return opts


def _cluster_kwargs(url: str) -> tuple[ClusterOptions, dict[str, Any]]:
    o = cluster_options(url)
    return o, {"username": o.username, "password": o.password, "ssl": o.tls}


def sync_client(url: str, **kwargs: Any) -> Any:
    """A sync redis-py client to the test Redis: ``redis.Redis`` or a cluster client."""
    if not CLUSTER:
        return redis.Redis.from_url(url, **kwargs)
    o, kw = _cluster_kwargs(url)
    return WholeCluster(startup_nodes=[ClusterNode(h, p) for h, p in o.nodes], **kw, **kwargs)


def async_client(url: str, **kwargs: Any) -> Any:
    """An asyncio redis-py client to the test Redis."""
    if not CLUSTER:
        return aioredis.Redis.from_url(url, **kwargs)
    o, kw = _cluster_kwargs(url)
    nodes = [AsyncClusterNode(h, p) for h, p in o.nodes]
    return AsyncRedisCluster(startup_nodes=nodes, **kw, **kwargs)


def flush(client: Any) -> None:
    """Empty the test keyspace (every primary of a cluster)."""
    if isinstance(client, RedisCluster):
        client.flushall(target_nodes=RedisCluster.PRIMARIES)
    else:
        client.flushdb()


def nodes(client: Any) -> list[redis.Redis]:
    """A plain client per node (the client itself on one node), for per-node commands
    such as ACL SETUSER."""
    if isinstance(client, RedisCluster):
        return [n.redis_connection for n in client.get_nodes()]
    return [client]


def with_credentials(url: str, username: str, password: str) -> str:
    """The test Redis URL with a user and password."""
    scheme, rest = url.split("://", 1)
    hosts = rest.rpartition("@")[2]
    auth = f"{quote(username, safe='')}:{quote(password, safe='')}@"
    if CLUSTER:
        return f"{scheme}://{auth}{hosts}"
    return f"{scheme}://{auth}{hosts.rsplit('/', 1)[0]}/0"


_node_clients: dict[str, list[redis.Redis]] = {}


def crossslot_errors(url: str) -> int:
    """How many CROSSSLOT errors the cluster's nodes have replied so far (INFO
    errorstats), to prove that no command of a test spanned slots."""
    if url not in _node_clients:
        o, kw = _cluster_kwargs(url)
        _node_clients[url] = [redis.Redis(host=h, port=p, **kw) for h, p in o.nodes]
    total = 0
    for node in _node_clients[url]:
        total += node.info("errorstats").get("errorstat_CROSSSLOT", {}).get("count", 0)
    return total
