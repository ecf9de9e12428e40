//! A TCP proxy a test can cut, two ways:
//! - [`TcpProxy::cut`]: every connection through it is closed at once and new ones are closed on
//!   arrival (a database that restarted, a connection reset);
//! - [`TcpProxy::cut_silently`]: packets are dropped, nothing is closed (a network partition, a
//!   peer host that vanished): the proxy stops relaying and its sockets, the listening one included,
//!   get a socket filter that drops every packet arriving from the clients before the kernel
//!   acknowledges it. A client sees no answer, no acknowledgement and no reset, as when a cable is
//!   pulled: only its own timeouts (connect timeout, keepalives, `tcp_user_timeout`) get it out.
//!
//! [`TcpProxy::restore`] lets new connections through again; silenced ones are closed then (as by a
//! firewall that lost their state).
//!
//! The proxy runs on its own thread and runtime, never on the test's: a test thread that blocks (in
//! a synchronous database call, say) must not stop the relaying its own stack depends on.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Closed,
    Silent,
    /// The proxy is being dropped: close everything and stop.
    Stopped,
}

pub struct TcpProxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    /// Relays still holding connections, so a cut can wait until they have all been cut.
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts relaying connections on a free loopback port to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let (mode, watcher) = watch::channel(Mode::Open);
        let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (ready, port) = std::sync::mpsc::channel();
        let counted = std::sync::Arc::clone(&live);
        let thread = std::thread::Builder::new()
            .name("test-tcp-proxy".into())
            .spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("proxy runtime");
                runtime.block_on(serve(target, watcher, counted, ready));
            })
            .expect("the proxy thread starts");
        let port = port.recv_timeout(Duration::from_secs(10)).expect("the proxy binds");
        Self { port, mode, live, thread: Some(thread) }
    }

    /// Closes every connection and closes new ones on arrival; returns once every relay has closed
    /// its connections (bounded).
    pub async fn cut(&self) {
        self.mode.send_replace(Mode::Closed);
        self.wait_until_relays_done().await;
    }

    /// Stops relaying and drops every packet from the clients (live connections and new ones)
    /// without closing anything.
    pub async fn cut_silently(&self) {
        self.mode.send_replace(Mode::Silent);
        // The filters are in place once the proxy thread has seen the change: give it a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Lets connections through again; connections silenced by [`TcpProxy::cut_silently`] are closed.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }

    async fn wait_until_relays_done(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.live.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            assert!(tokio::time::Instant::now() < deadline, "the proxy did not close its connections within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Stopped);
        if let Some(thread) = self.thread.take() {
            // The thread ends as soon as it sees the change; never wait on it for long.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !thread.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

async fn serve(
    target: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ready: std::sync::mpsc::Sender<u16>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
    let _ = ready.send(listener.local_addr().expect("proxy address").port());
    loop {
        tokio::select! {
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = *mode.borrow_and_update();
                match now {
                    Mode::Stopped => return,
                    // SYNs are dropped too: a new connection neither succeeds nor is refused.
                    Mode::Silent => drop_every_packet(&listener),
                    Mode::Open | Mode::Closed => let_packets_through(&listener),
                }
            }
            accepted = listener.accept() => {
                let Ok((inbound, _)) = accepted else { continue };
                match *mode.borrow() {
                    Mode::Open => {}
                    Mode::Silent => drop_every_packet(&inbound),
                    Mode::Closed | Mode::Stopped => continue, // dropped: the client sees it closed
                }
                live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (mode, live) = (mode.clone(), std::sync::Arc::clone(&live));
                tokio::spawn(async move {
                    relay(inbound, target, mode).await;
                    live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        }
    }
}

/// Relays one connection until it ends or the proxy is cut. Silenced, it keeps both sockets open
/// (so nothing is closed) until the proxy is restored or stopped.
async fn relay(mut inbound: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if *mode.borrow() == Mode::Silent {
        let _ = mode.wait_for(|m| matches!(m, Mode::Open | Mode::Closed | Mode::Stopped)).await;
        let_packets_through(&inbound);
        return;
    }
    let Ok(mut outbound) = TcpStream::connect(target).await else { return };
    let silenced = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
        cut = mode.wait_for(|m| *m != Mode::Open) => cut.is_ok_and(|m| *m == Mode::Silent),
    };
    if silenced {
        drop_every_packet(&inbound);
        let _ = mode.wait_for(|m| matches!(m, Mode::Open | Mode::Closed | Mode::Stopped)).await;
        // Closed once packets flow again (as a firewall that lost the connection's state would):
        // the filter goes first, or the close itself would wait forever for acknowledgements.
        let_packets_through(&inbound);
    }
}

/// A classic BPF program of one instruction, `ret #0`: every packet arriving at the socket is
/// dropped before TCP sees it (so it is not acknowledged either).
fn drop_every_packet(socket: &impl AsRawFd) {
    let mut program = [libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: 0 }];
    let filter = libc::sock_fprog { len: program.len() as u16, filter: program.as_mut_ptr() };
    // SAFETY: a valid socket, and a filter program that outlives the call (the kernel copies it).
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::addr_of!(filter).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    assert_eq!(result, 0, "attaching the drop filter: {}", std::io::Error::last_os_error());
}

fn let_packets_through(socket: &impl AsRawFd) {
    let unused: libc::c_int = 0;
    // SAFETY: a valid socket and an int-sized value (the kernel refuses anything shorter; the value
    // itself is ignored).
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DETACH_FILTER,
            std::ptr::addr_of!(unused).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    let error = std::io::Error::last_os_error();
    // ENOENT: no filter was attached.
    assert!(result == 0 || error.raw_os_error() == Some(libc::ENOENT), "detaching the drop filter: {error}");
}
