//! The floor for any proxy: a TCP forwarder that copies bytes both ways
//! and understands nothing. `bench/relay.sh` measures it beside spamgate
//! (`NULL_PROXY=1`), so the figures show which part of the cost comes from
//! relaying through a second socket pair at all and which from spamgate.
//!
//! ```text
//! null_proxy LISTEN_ADDR UPSTREAM_ADDR
//! ```

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: null_proxy LISTEN_ADDR UPSTREAM_ADDR");
        std::process::exit(2);
    };
    let upstream: SocketAddr = upstream.parse().expect("UPSTREAM_ADDR is ip:port");
    let listener = TcpListener::bind(&listen).await?;
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(forward(client, upstream));
    }
}

/// Copies until either side closes; errors only end this one connection.
async fn forward(mut client: TcpStream, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
