//! `cprwatch run` over a PostgreSQL store that several instances share: one leads, the others
//! follow and take over when it stops.
//!
//! Why a lease and not "whoever runs": the work that must happen once — reading the mailboxes
//! into the log, evaluating clocks, sending alerts and receipts, canaries, revocation checks —
//! would happen twice with two writers, and the log would disagree with itself. The lease
//! ([`crate::store::lease`]) is a row in the database: the instance that holds it leads, renews
//! it every third of `lease_ttl`, and writes only under its fence, so an instance that lost it
//! (paused, cut off) cannot write even before it notices. A follower serves the dashboard, API
//! and metrics from the same tables, and asks for the lease as soon as the leader's runs out:
//! within `lease_ttl` of the leader stopping (at once, when it stopped cleanly and released it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::folder_sync::Request;
use super::shutdown::Shutdown;
use super::{Leading, lead};
use crate::config::{Config, PostgresConfig};
use crate::desk::DeskError;
use crate::store::{Fence, InstanceId, Lease, PostgresStore, StoreError};

/// The store connection the lease is asked through: its own, so a long commit of the desk never
/// delays a renewal.
type LeaseStore = Arc<Mutex<PostgresStore>>;

/// Run with `[store] url`: serve the dashboard throughout; lead while holding the lease.
pub(super) async fn run(
    config: Config,
    pg: PostgresConfig,
    mut shutdown: Shutdown,
) -> Result<(), DeskError> {
    let password = pg
        .password
        .read()
        .map_err(|e| DeskError::Secret(format!("[store] password: {e}")))?;
    let lease_store: LeaseStore = Arc::new(Mutex::new(tokio::task::block_in_place(|| {
        PostgresStore::open(&pg.url, &password, pg.ca_file.as_deref())
    })?));
    drop(password);
    // The dashboard outlives leaderships: bound once, its requests answered by whoever this
    // instance is at the moment.
    let (web_tx, mut web_rx) = mpsc::channel::<Request>(16);
    let health = Arc::new(crate::web::Health::default());
    let mut server = tokio::task::JoinSet::new();
    if let Some(s) =
        crate::web::Server::bind(Arc::new(config.clone()), health.clone(), web_tx).await?
    {
        server.spawn(s.run(shutdown.clone()));
    }
    info!(
        instance = %pg.instance,
        lease_ttl_s = pg.lease_ttl.as_secs(),
        "cprwatch running as one of the instances sharing the store; following until it leads"
    );
    loop {
        let Some(lease) = follow(&lease_store, &pg, &mut shutdown, &mut web_rx).await else {
            break;
        };
        let fence = lease.fence();
        info!(instance = %pg.instance, epoch = lease.epoch, "this instance leads");
        // The leader's work stops when the service stops or the lease is lost.
        let (stop, leading) = Shutdown::new();
        let keeper = tokio::spawn(keep(
            lease_store.clone(),
            pg.instance.clone(),
            pg.lease_ttl,
            fence.clone(),
            stop,
            shutdown.clone(),
        ));
        let led = lead(
            &config,
            leading,
            Leading::Shared {
                fence: fence.clone(),
                web: &mut web_rx,
                health: health.clone(),
            },
        )
        .await;
        keeper.abort();
        if shutdown.is_shutdown() {
            // Hand over at once rather than after the TTL.
            let released = ask(&lease_store, move |s| s.release(&fence)).await;
            match released {
                Ok(true) => info!(instance = %pg.instance, "lease released"),
                Ok(false) => {}
                Err(e) => warn!(error = %e, "cannot release the lease; it runs out by itself"),
            }
            led?;
            break;
        }
        match led {
            Ok(()) => warn!(instance = %pg.instance, "lost the lease: this instance follows"),
            Err(e) => {
                // Another instance may do better (this one cannot open its desk, say): hand the
                // lease over, and ask again only after a TTL.
                error!(
                    instance = %pg.instance,
                    error = %e,
                    "the leader's work stopped: released the lease; this instance follows"
                );
                let _ = ask(&lease_store, move |s| s.release(&fence)).await;
                tokio::select! {
                    _ = shutdown.recv() => break,
                    _ = tokio::time::sleep(pg.lease_ttl) => {}
                }
            }
        }
    }
    server.shutdown().await;
    info!("shutting down: all committed");
    Ok(())
}

/// Run a blocking lease operation on the lease connection.
async fn ask<T: Send + 'static>(
    store: &LeaseStore,
    f: impl FnOnce(&PostgresStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let s = store.lock().unwrap_or_else(|p| p.into_inner());
        f(&s)
    })
    .await
    .unwrap_or_else(|e| {
        Err(StoreError::Value {
            action: "ask for the lease",
            detail: e.to_string(),
        })
    })
}

/// Follow until this instance takes the lease (`None`: the service stops first). Asks again
/// the moment the current lease runs out, at least every second; answers the dashboard
/// meanwhile.
async fn follow(
    store: &LeaseStore,
    pg: &PostgresConfig,
    shutdown: &mut Shutdown,
    web: &mut mpsc::Receiver<Request>,
) -> Option<Lease> {
    let mut failing: Option<String> = None;
    let mut following: Option<(InstanceId, i64)> = None;
    loop {
        if shutdown.is_shutdown() {
            return None;
        }
        let (me, ttl) = (pg.instance.clone(), pg.lease_ttl);
        let asked = ask(store, move |s| {
            Ok(match s.acquire_or_renew(&me, ttl)? {
                Some(lease) => Err(lease),
                None => Ok(s.leader()?),
            })
        })
        .await;
        let wait = match asked {
            Ok(Err(lease)) => return Some(lease),
            Ok(Ok(leader)) => {
                failing = None;
                match leader {
                    Some(l) => {
                        if following.as_ref() != Some(&(l.holder.clone(), l.epoch)) {
                            info!(leader = %l.holder, epoch = l.epoch, "following");
                            following = Some((l.holder.clone(), l.epoch));
                        }
                        // Ask again right after it runs out, or in a second.
                        (l.remaining + Duration::from_millis(5)).min(Duration::from_secs(1))
                    }
                    None => Duration::from_millis(100),
                }
            }
            Err(e) => {
                let e = e.to_string();
                if failing.as_deref() != Some(e.as_str()) {
                    warn!(error = %e, "cannot ask for the lease; asking again every second");
                    failing = Some(e);
                }
                Duration::from_secs(1)
            }
        };
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.recv() => return None,
                Some(req) = web.recv() => answer_as_follower(req, following.as_ref()),
                _ = &mut sleep => break,
            }
        }
    }
}

/// What a follower says to the dashboard: it is alive; actions are the leader's to record.
fn answer_as_follower(req: Request, leader: Option<&(InstanceId, i64)>) {
    let who = leader.map_or("no instance (the lease is free)".to_string(), |(l, _)| {
        format!("instance {l}")
    });
    match req {
        Request::Ping { reply } => {
            let _ = reply.send(Ok(()));
        }
        Request::Actions { reply, .. } => {
            let _ = reply.send(Err(format!(
                "this instance follows; {who} leads and records actions — try again in a few \
                 seconds, or on its dashboard"
            )));
        }
        // Only the dashboard asks this channel; anything else is the leader's.
        _ => {}
    }
}

/// Renew the lease every third of its TTL while leading; fire `stop` once it is lost — taken
/// by another instance, or not renewed for a whole TTL (the server unreachable: the fence
/// already refuses every write by then).
async fn keep(
    store: LeaseStore,
    me: InstanceId,
    ttl: Duration,
    fence: Fence,
    stop: super::shutdown::Trigger,
    mut shutdown: Shutdown,
) {
    let mut renewed = Instant::now();
    let mut every = tokio::time::interval(ttl / 3);
    every.tick().await;
    loop {
        tokio::select! {
            biased;
            _ = shutdown.recv() => {
                stop.fire();
                return;
            }
            _ = every.tick() => {}
        }
        let (me2, epoch) = (me.clone(), fence.epoch);
        let asked =
            tokio::time::timeout(ttl / 3, ask(&store, move |s| s.acquire_or_renew(&me2, ttl)))
                .await;
        match asked {
            Ok(Ok(Some(lease))) if lease.epoch == epoch => renewed = Instant::now(),
            Ok(Ok(_)) => {
                warn!(instance = %me, "the lease was taken over: stopping the leader's work");
                stop.fire();
                return;
            }
            Ok(Err(e)) => warn!(error = %e, "cannot renew the lease"),
            Err(_) => warn!("renewing the lease takes too long"),
        }
        if renewed.elapsed() >= ttl {
            warn!(instance = %me, "the lease was not renewed for a whole TTL: stopping the leader's work");
            stop.fire();
            return;
        }
    }
}
