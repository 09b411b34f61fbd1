//! Where revocation fetches may connect: public addresses only, unless the desk says otherwise.
//!
//! The OCSP, CRL and caIssuers URLs come from reported certificates, and anyone can mail a
//! certificate whose AIA names `http://127.0.0.1:8080/…` or `http://10.0.0.5/…`: a fetch there
//! would have cprwatch make requests inside the CA's network for a stranger (server-side
//! request forgery). So every host name is resolved here, and an answer holding a loopback,
//! private, link-local, carrier-grade NAT, multicast or unspecified address is refused before
//! any connection; the connection then goes to exactly the addresses checked (no second
//! lookup a changed DNS answer could slip through). A URL naming such an address directly is
//! refused the same way ([`check_literal`]). `[revocation] allow_private_addresses = true`
//! lifts it, for a responder inside the CA's own network (and the tests' loopback test CA).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// Whether `ip` is an address on the public Internet (the only kind fetched by default).
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                // 100.64.0.0/10, carrier-grade NAT (RFC 6598).
                || (a == 100 && (64..128).contains(&b))
                // 198.18.0.0/15, benchmarking (RFC 2544).
                || (a == 198 && (b == 18 || b == 19))
                // 240.0.0.0/4, reserved.
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The refusal for an address that is not public, in words that say what to change.
pub(crate) fn refusal(ip: IpAddr) -> String {
    format!(
        "{ip} is not a public address; cprwatch does not fetch from private, loopback or \
         link-local addresses named by a reported certificate (set [revocation] \
         allow_private_addresses = true for a responder inside your own network)"
    )
}

/// A URL's host given as an address (`http://10.0.0.1/`, `http://[::1]/`): checked here,
/// because the connector connects to a literal without asking the resolver.
pub(crate) fn check_literal(host: &str, allow_private: bool) -> Result<(), String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) if !allow_private && !is_public(ip) => Err(refusal(ip)),
        _ => Ok(()),
    }
}

/// The resolver the fetch client connects through: the system's (tokio's `lookup_host`),
/// then every address held to [`is_public`] unless `allow_private`.
#[derive(Clone, Debug)]
pub(crate) struct GuardedResolver {
    pub allow_private: bool,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    refusal(bad.ip()),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::",
        ] {
            assert!(!is_public(bad.parse().unwrap()), "{bad}");
        }
        for good in [
            "8.8.8.8",
            "91.199.212.132",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            assert!(is_public(good.parse().unwrap()), "{good}");
        }
    }

    #[test]
    fn a_literal_address_is_checked_unless_private_ones_are_allowed() {
        assert!(check_literal("127.0.0.1", false).is_err());
        assert!(check_literal("[::1]", false).is_err());
        assert!(check_literal("127.0.0.1", true).is_ok());
        assert!(check_literal("ocsp.example-ca.test", false).is_ok());
        let e = check_literal("169.254.169.254", false).unwrap_err();
        assert!(e.contains("allow_private_addresses"), "{e}");
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_that_resolves_to_loopback() {
        use tower_service::Service;
        let name: Name = "localhost".parse().unwrap();
        let mut guarded = GuardedResolver {
            allow_private: false,
        };
        let e = guarded.call(name.clone()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        let mut open = GuardedResolver {
            allow_private: true,
        };
        assert!(open.call(name).await.unwrap().next().is_some());
    }
}
