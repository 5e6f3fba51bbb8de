//! The loopback receiver that deliveries arrive at, and what it saw.

use super::*;

/// What the receiver saw.
#[derive(Debug, Default)]
pub(super) struct Arrivals {
    pub(super) latencies_us: Vec<u64>,
    pub(super) seen: HashMap<(usize, u64), u32>,
    pub(super) last_arrival: Option<Instant>,
}

#[derive(Clone)]
pub(super) struct ReceiverState {
    pub(super) arrivals: Arc<Mutex<Arrivals>>,
    pub(super) progress: Arc<Notify>,
}

pub(super) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(0)
}

pub(super) async fn receive(
    State(state): State<ReceiverState>,
    axum::extract::Path(endpoint_index): axum::extract::Path<usize>,
    body: Bytes,
) -> StatusCode {
    let arrived_us = now_us();
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let payload = &event["payload"];
    let (Some(sent_us), Some(number)) = (payload["sent_us"].as_u64(), payload["n"].as_u64()) else {
        return StatusCode::BAD_REQUEST;
    };
    if let Ok(mut arrivals) = state.arrivals.lock() {
        arrivals
            .latencies_us
            .push(arrived_us.saturating_sub(sent_us));
        *arrivals.seen.entry((endpoint_index, number)).or_default() += 1;
        arrivals.last_arrival = Some(Instant::now());
    }
    state.progress.notify_one();
    StatusCode::NO_CONTENT
}

/// The loopback receiver the delivery scenarios send to, at `/hook/{endpoint index}`.
pub(super) async fn start_receiver() -> anyhow::Result<(ReceiverState, SocketAddr)> {
    let state = ReceiverState {
        arrivals: Arc::new(Mutex::new(Arrivals::default())),
        progress: Arc::new(Notify::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let receiver = axum::Router::new()
        .route("/hook/{endpoint}", axum::routing::post(receive))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });
    Ok((state, address))
}

/// How many unique deliveries the receiver has seen.
pub(super) fn n_received(state: &ReceiverState) -> usize {
    state
        .arrivals
        .lock()
        .map(|arrivals| arrivals.seen.len())
        .unwrap_or(0)
}
