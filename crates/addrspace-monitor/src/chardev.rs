//! Where a monitor listens, in the syntax of QEMU's `-qmp` / `-monitor` options:
//! `unix:PATH,server=on,wait=off`, `tcp:HOST:PORT,server=on,wait=off`, and the older
//! flags `server` and `nowait`. We only listen (QEMU's client mode, `server=off`, connects
//! out to a listening client; we do not support it).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::args::split_opts;
use crate::server::MonitorError;

/// The socket a monitor listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix socket at this path.
    Unix(PathBuf),
    /// A TCP socket; an empty host means every interface.
    Tcp {
        /// Host name or address (without IPv6 brackets).
        host: String,
        /// Port; 0 picks a free one.
        port: u16,
    },
}

/// A parsed `-qmp`/`-monitor` socket option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChardevSpec {
    /// Where to listen.
    pub endpoint: Endpoint,
    /// `wait=on` (QEMU's default for a server): startup should block until a client
    /// connects ([`Monitor::wait_for_client`](crate::Monitor::wait_for_client)).
    pub wait: bool,
}

fn bad(spec: &str, reason: impl Into<String>) -> MonitorError {
    MonitorError::Spec {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

fn on_off(spec: &str, key: &str, value: &str) -> Result<bool, MonitorError> {
    match value {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(bad(
            spec,
            format!("parameter '{key}' expects 'on' or 'off', not '{value}'"),
        )),
    }
}

impl ChardevSpec {
    /// Parses QEMU's socket chardev shorthand.
    ///
    /// ```
    /// use addrspace_monitor::{ChardevSpec, Endpoint};
    ///
    /// let spec = ChardevSpec::parse("unix:/tmp/qmp.sock,server=on,wait=off")?;
    /// assert_eq!(spec.endpoint, Endpoint::Unix("/tmp/qmp.sock".into()));
    /// assert!(!spec.wait);
    /// let spec: ChardevSpec = "tcp:127.0.0.1:4444,server,nowait".parse()?;
    /// assert_eq!(spec.to_string(), "tcp:127.0.0.1:4444,server=on,wait=off");
    /// // Connecting out (QEMU's client mode) is not supported.
    /// assert!(ChardevSpec::parse("unix:/tmp/qmp.sock").is_err());
    /// # Ok::<(), addrspace_monitor::MonitorError>(())
    /// ```
    pub fn parse(spec: &str) -> Result<ChardevSpec, MonitorError> {
        let usage = "expected unix:PATH,server=on[,wait=off] or tcp:HOST:PORT,server=on[,wait=off]";
        let (kind, rest) = spec.split_once(':').ok_or_else(|| bad(spec, usage))?;
        let mut parts = split_opts(rest).into_iter();
        let address = parts.next().unwrap_or_default();
        let endpoint = match kind {
            "unix" if address.is_empty() => return Err(bad(spec, "the socket path is empty")),
            "unix" => Endpoint::Unix(PathBuf::from(address)),
            "tcp" => {
                let (host, port) = address
                    .rsplit_once(':')
                    .ok_or_else(|| bad(spec, "tcp needs HOST:PORT"))?;
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad(spec, format!("'{port}' is not a port number")))?;
                let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
                Endpoint::Tcp {
                    host: host.to_string(),
                    port,
                }
            }
            other => {
                return Err(bad(
                    spec,
                    format!("'{other}' is not a supported monitor backend; {usage}"),
                ))
            }
        };
        let mut server = false;
        let mut wait = true;
        for opt in parts {
            match opt.split_once('=') {
                Some(("server", v)) => server = on_off(spec, "server", v)?,
                Some(("wait", v)) => wait = on_off(spec, "wait", v)?,
                None if opt == "server" => server = true,
                None if opt == "nowait" => wait = false,
                None if opt == "wait" => wait = true,
                _ => return Err(bad(spec, format!("unsupported option '{opt}'"))),
            }
        }
        if !server {
            return Err(bad(spec, "client mode (server=off) is not supported; add server=on"));
        }
        Ok(ChardevSpec { endpoint, wait })
    }
}

impl FromStr for ChardevSpec {
    type Err = MonitorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChardevSpec::parse(s)
    }
}

impl fmt::Display for ChardevSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display())?,
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}")?,
            Endpoint::Tcp { host, port } => write!(f, "tcp:{host}:{port}")?,
        }
        let wait = if self.wait { "on" } else { "off" };
        write!(f, ",server=on,wait={wait}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(path: &str, wait: bool) -> ChardevSpec {
        ChardevSpec {
            endpoint: Endpoint::Unix(path.into()),
            wait,
        }
    }

    #[test]
    fn accepted_forms() {
        let ok = |s: &str| ChardevSpec::parse(s).ok();
        assert_eq!(
            ok("unix:/tmp/q.sock,server=on,wait=off"),
            Some(unix("/tmp/q.sock", false))
        );
        assert_eq!(ok("unix:/tmp/q.sock,server,nowait"), Some(unix("/tmp/q.sock", false)));
        assert_eq!(ok("unix:/tmp/q.sock,server=on"), Some(unix("/tmp/q.sock", true)));
        assert_eq!(ok("unix:/tmp/a,,b,server"), Some(unix("/tmp/a,b", true)));
        let tcp = |host: &str, port, wait| ChardevSpec {
            endpoint: Endpoint::Tcp {
                host: host.into(),
                port,
            },
            wait,
        };
        assert_eq!(
            ok("tcp:127.0.0.1:4444,server=on,wait=off"),
            Some(tcp("127.0.0.1", 4444, false))
        );
        assert_eq!(ok("tcp::0,server,nowait"), Some(tcp("", 0, false)));
        assert_eq!(ok("tcp:[::1]:5,server=on,wait=on"), Some(tcp("::1", 5, true)));
        let spec = "tcp:[::1]:5,server=on,wait=off";
        assert_eq!(ok(spec).map(|s| s.to_string()), Some(spec.to_string()));
    }

    #[test]
    fn rejected_forms_say_why() {
        let err = |s: &str| ChardevSpec::parse(s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err("unix:/tmp/q.sock").contains("client mode"));
        assert!(err("unix:/tmp/q.sock,server=off").contains("client mode"));
        assert!(err("stdio").contains("expected unix:PATH"));
        assert!(err("pty:x").contains("not a supported monitor backend"));
        assert!(err("unix:,server").contains("empty"));
        assert!(err("tcp:localhost,server").contains("HOST:PORT"));
        assert!(err("tcp:localhost:http,server").contains("not a port number"));
        assert!(err("unix:/x,server,telnet").contains("unsupported option 'telnet'"));
        assert!(err("unix:/x,server=maybe").contains("expects 'on' or 'off'"));
    }
}
