//! A TCP proxy that measures how long the server behind it takes to answer (for each
//! request, from its last byte forwarded to the first byte of the answer) and how many
//! requests wait at once. In front of moto (through the emulator's forwarder, which holds
//! each call to the caller's shipped policy): moto is Python and serves DynamoDB one request
//! at a time, where real services answer in parallel and in a few ms, so the figures that
//! include moto's time are shown with and without it. In front of the identity emulator: how
//! many create calls a batch has in flight at once.
//!
//! `busy` is the time at least one request was waiting for moto (overlaps counted once);
//! `waited` the sum of every request's wait. An optional inspector sees the first bytes of
//! each request (its head, usually its whole body too), e.g. to count calls per caller.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Clock {
    in_flight: u32,
    busy_since: Option<Instant>,
    busy: Duration,
    waited: Duration,
    requests: u64,
    peak: u32,
}

/// Called with the first bytes read of each request.
pub type Inspector = Arc<dyn Fn(&[u8]) + Send + Sync>;

#[derive(Clone)]
pub struct TimingProxy {
    addr: SocketAddr,
    clock: Arc<Mutex<Clock>>,
}

/// What moto did between two `reset`s.
#[derive(Clone, Copy, Debug, Default)]
pub struct MotoTime {
    pub busy: Duration,
    pub waited: Duration,
    pub requests: u64,
    /// Most requests waiting for an answer at the same time.
    pub peak_in_flight: u32,
}

/// A proxy in front of `stack`'s emulator, for moto's services: the emulator's forwarder holds
/// each call to its caller's shipped policy (as in every local run), then forwards it to
/// moto. What the proxy times is therefore moto's answer plus the evaluation and the hop.
pub async fn moto_of(stack: &integration_tests::stack::Stack) -> Result<TimingProxy, String> {
    TimingProxy::start(stack.emulator.addr())
        .await
        .map_err(|e| format!("cannot start the moto proxy: {e}"))
}

impl TimingProxy {
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        Self::start_inspecting(upstream, None).await
    }

    /// As [`TimingProxy::start`], with `inspect` called on the first read of every request.
    pub async fn start_inspecting(
        upstream: SocketAddr,
        inspect: Option<Inspector>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let proxy = TimingProxy {
            addr: listener.local_addr()?,
            clock: Arc::default(),
        };
        let clock = proxy.clock.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let clock = clock.clone();
                let inspect = inspect.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, clock, inspect).await;
                    }
                });
            }
        });
        Ok(proxy)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts counting from zero (requests still in flight are not counted).
    pub fn reset(&self) {
        let mut clock = lock(&self.clock);
        let in_flight = clock.in_flight;
        *clock = Clock {
            in_flight,
            busy_since: (in_flight > 0).then(Instant::now),
            peak: in_flight,
            ..Clock::default()
        };
    }

    pub fn time(&self) -> MotoTime {
        let clock = lock(&self.clock);
        let running = clock.busy_since.map(|s| s.elapsed()).unwrap_or_default();
        MotoTime {
            busy: clock.busy + running,
            waited: clock.waited,
            requests: clock.requests,
            peak_in_flight: clock.peak,
        }
    }
}

fn lock(clock: &Mutex<Clock>) -> MutexGuard<'_, Clock> {
    clock.lock().unwrap_or_else(|p| p.into_inner())
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    clock: Arc<Mutex<Clock>>,
    inspect: Option<Inspector>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // When this connection's current request was (last) forwarded, until its answer starts.
    let pending: Arc<Mutex<Option<Instant>>> = Arc::default();

    let up = {
        let (pending, clock) = (pending.clone(), clock.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let now = Instant::now();
                let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
                if p.is_none() {
                    if let Some(inspect) = &inspect {
                        inspect(&buf[..n]);
                    }
                    let mut c = lock(&clock);
                    if c.in_flight == 0 {
                        c.busy_since = Some(now);
                    }
                    c.in_flight += 1;
                    c.peak = c.peak.max(c.in_flight);
                    c.requests += 1;
                }
                *p = Some(now);
            }
            let _ = server_write.shutdown().await;
        }
    };
    let down = {
        let (pending, clock) = (pending.clone(), clock.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let now = Instant::now();
                let since = pending.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(since) = since {
                    let mut c = lock(&clock);
                    c.waited += now.saturating_duration_since(since);
                    c.in_flight = c.in_flight.saturating_sub(1);
                    if c.in_flight == 0 {
                        if let Some(start) = c.busy_since.take() {
                            c.busy += now.saturating_duration_since(start);
                        }
                    }
                }
                if client_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = client_write.shutdown().await;
        }
    };
    tokio::join!(up, down);
    // A request left unanswered (the connection died) no longer keeps moto "busy".
    if pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .is_some()
    {
        let mut c = lock(&clock);
        c.in_flight = c.in_flight.saturating_sub(1);
        if c.in_flight == 0 {
            if let Some(start) = c.busy_since.take() {
                c.busy += start.elapsed();
            }
        }
    }
}
