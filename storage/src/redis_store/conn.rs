//! One Redis server or a Redis Cluster, behind the same connection type.
//!
//! Every command the store sends names keys of one hash slot (see the key tables), so a cluster
//! connection routes each command, script or pipeline to the shard owning that slot and the
//! rest of the store never knows which deployment it talks to. Pub/sub is the exception: a
//! cluster connection cannot subscribe, so [`RedisTarget::pubsub_connection`] opens a plain
//! connection to one seed node; classic `PUBLISH` on a cluster reaches the subscribers of every
//! node, so one subscription on any node hears the whole cluster.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{Cmd, Connection, ConnectionLike, RedisResult, Value};

/// Where the store's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis server (`--redis`).
    Single(String),
    /// The seed nodes of a Redis Cluster (`--redis-cluster`); the rest is discovered.
    Cluster(Vec<String>),
}

/// How many times a cluster command follows redirections or retries a shard that does not
/// answer before failing. The crate's default (16, with growing waits) holds a caller for many
/// seconds during an outage; a failed append is retried by the room anyway, so fail soon.
const CLUSTER_RETRIES: u32 = 3;

/// A connection (or a cluster connection) fails a call that takes longer than this, so an
/// unreachable shard fails an append instead of holding its room. Blocking reads set their own,
/// longer timeout.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) enum Client {
    Single(redis::Client),
    Cluster(ClusterClient),
}

/// A connection to either deployment; every command type of the crate runs on it.
pub enum RedisConn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl RedisTarget {
    pub(crate) fn client(&self) -> RedisResult<Client> {
        Ok(match self {
            RedisTarget::Single(url) => Client::Single(redis::Client::open(url.as_str())?),
            RedisTarget::Cluster(urls) => Client::Cluster(
                ClusterClient::builder(urls.iter().map(String::as_str))
                    .retries(CLUSTER_RETRIES)
                    .connection_timeout(RESPONSE_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .build()?,
            ),
        })
    }

    /// A plain connection for pub/sub: the server itself, or the first seed node that answers.
    pub fn pubsub_connection(&self) -> RedisResult<Connection> {
        let urls = match self {
            RedisTarget::Single(url) => std::slice::from_ref(url),
            RedisTarget::Cluster(urls) => urls.as_slice(),
        };
        let mut last = None;
        for url in urls {
            match redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(RESPONSE_TIMEOUT))
            {
                Ok(conn) => return Ok(conn),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "no Redis URL"))
        }))
    }
}

impl Client {
    pub(crate) fn connection(&self) -> RedisResult<RedisConn> {
        Ok(match self {
            Client::Single(c) => {
                let conn = c.get_connection_with_timeout(RESPONSE_TIMEOUT)?;
                conn.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
                RedisConn::Single(conn)
            }
            Client::Cluster(c) => RedisConn::Cluster(Box::new(c.get_connection()?)),
        })
    }
}

impl RedisConn {
    /// How long a read may wait for its reply (a blocking read waits longer than a command).
    pub fn set_read_timeout(&self, timeout: Duration) -> RedisResult<()> {
        match self {
            RedisConn::Single(c) => c.set_read_timeout(Some(timeout)),
            RedisConn::Cluster(c) => c.set_read_timeout(Some(timeout)),
        }
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            RedisConn::Single(c) => c.req_command(cmd),
            RedisConn::Cluster(c) => c.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }

    /// The cluster connection says no because a pipeline may span shards; it sends one whole
    /// to the shard of its first command. The store pipelines only commands over keys of one
    /// slot (a transaction included), so that shard owns every key of it.
    fn supports_pipelining(&self) -> bool {
        true
    }

    fn check_connection(&mut self) -> bool {
        match self {
            RedisConn::Single(c) => c.check_connection(),
            RedisConn::Cluster(c) => c.check_connection(),
        }
    }

    fn is_open(&self) -> bool {
        match self {
            RedisConn::Single(c) => c.is_open(),
            RedisConn::Cluster(c) => c.is_open(),
        }
    }
}
