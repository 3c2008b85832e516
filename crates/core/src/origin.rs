//! Where a connection comes from (§1.2 of the reference), with TrueNAS' exact string forms.

use std::fmt;
use std::net::IpAddr;

/// The origin of a connection, fixed at WebSocket upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A local UNIX socket peer (`SO_PEERCRED`).
    Unix {
        pid: i32,
        uid: u32,
        gid: u32,
        loginuid: Option<u32>,
    },
    /// A TCP peer.
    Tcp { addr: IpAddr, port: u16, ssl: bool },
}

/// `loginuid` of a process that is not part of a login session.
pub const AUID_UNSET: u32 = u32::MAX;

impl Origin {
    /// TLS, AF_UNIX, or a loopback peer; plain `ws://` from the network is insecure.
    pub fn secure_transport(&self) -> bool {
        match self {
            Origin::Unix { .. } => true,
            Origin::Tcp { addr, ssl, .. } => *ssl || addr.is_loopback() || is_mapped_loopback(addr),
        }
    }

    /// `origin.repr` used in audit `addr`: `pid:<pid>` or the IP.
    pub fn repr(&self) -> String {
        match self {
            Origin::Unix { pid, .. } => format!("pid:{pid}"),
            Origin::Tcp { addr, .. } => addr.to_string(),
        }
    }

    /// The audit `addr` field: the remote IP, or 127.0.0.1 for UNIX sockets.
    pub fn audit_addr(&self) -> String {
        match self {
            Origin::Unix { .. } => "127.0.0.1".to_string(),
            Origin::Tcp { addr, .. } => addr.to_string(),
        }
    }

    /// Token origin binding: same uid and gid for UNIX, same IP (port ignored) for TCP.
    pub fn matches(&self, other: &Origin) -> bool {
        match (self, other) {
            (Origin::Unix { uid: a, gid: b, .. }, Origin::Unix { uid: c, gid: d, .. }) => {
                a == c && b == d
            }
            (Origin::Tcp { addr: a, .. }, Origin::Tcp { addr: b, .. }) => a == b,
            _ => false,
        }
    }

    /// The remote IP for per-origin rate limits; `None` for UNIX sockets (exempt).
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Origin::Unix { .. } => None,
            Origin::Tcp { addr, .. } => Some(*addr),
        }
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, Origin::Unix { .. })
    }
}

fn is_mapped_loopback(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Unix { pid, uid, gid, .. } => {
                write!(f, "UNIX socket (pid={pid} uid={uid} gid={gid})")
            }
            Origin::Tcp {
                addr: IpAddr::V4(a),
                port,
                ..
            } => write!(f, "{a}:{port}"),
            Origin::Tcp {
                addr: IpAddr::V6(a),
                port,
                ..
            } => write!(f, "[{a}]:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_and_security() {
        let unix = Origin::Unix {
            pid: 12,
            uid: 0,
            gid: 0,
            loginuid: None,
        };
        let v4 = Origin::Tcp {
            addr: "192.168.1.20".parse().unwrap(),
            port: 51544,
            ssl: false,
        };
        let v6 = Origin::Tcp {
            addr: "::1".parse().unwrap(),
            port: 80,
            ssl: false,
        };
        let tls = Origin::Tcp {
            addr: "10.0.0.1".parse().unwrap(),
            port: 1,
            ssl: true,
        };
        let table = [
            (&unix, "UNIX socket (pid=12 uid=0 gid=0)", "pid:12", true),
            (&v4, "192.168.1.20:51544", "192.168.1.20", false),
            (&v6, "[::1]:80", "::1", true),
            (&tls, "10.0.0.1:1", "10.0.0.1", true),
        ];
        for (o, display, repr, secure) in table {
            assert_eq!(o.to_string(), display);
            assert_eq!(o.repr(), repr);
            assert_eq!(o.secure_transport(), secure, "{display}");
        }
    }

    #[test]
    fn token_matching_ignores_port() {
        let a = Origin::Tcp {
            addr: "10.1.1.1".parse().unwrap(),
            port: 1,
            ssl: false,
        };
        let b = Origin::Tcp {
            addr: "10.1.1.1".parse().unwrap(),
            port: 2,
            ssl: false,
        };
        let c = Origin::Tcp {
            addr: "10.1.1.2".parse().unwrap(),
            port: 1,
            ssl: false,
        };
        let u = Origin::Unix {
            pid: 1,
            uid: 5,
            gid: 5,
            loginuid: None,
        };
        let u2 = Origin::Unix {
            pid: 2,
            uid: 5,
            gid: 5,
            loginuid: Some(5),
        };
        assert!(a.matches(&b));
        assert!(!a.matches(&c));
        assert!(u.matches(&u2));
        assert!(!u.matches(&a));
    }
}
