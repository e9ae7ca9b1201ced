//! hyper's HTTP/1 header timer, made to tell two waits apart.
//!
//! hyper starts one timer whenever a connection waits for a request head:
//! on a new connection, and again after every answer on a kept-alive one.
//! One duration for both would force a choice between closing slow heads
//! late or closing idle keep-alive connections early (before a load
//! balancer's own idle timeout, which makes it answer 502). This timer,
//! given to hyper per connection, ends the wait
//! - `header_timeout` after the first byte of the head arrives, or
//! - if no byte has arrived: `keep_alive_timeout` after the previous answer
//!   on a kept-alive connection, `header_timeout` after a new one opened.
//!
//! hyper polls the timer again after every read of a partial head, so the
//! deadline moves to the right one as soon as the first byte is seen.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};

use super::io::Activity;

#[derive(Clone)]
pub struct HeadTimer {
    pub activity: Arc<Activity>,
    pub header_timeout: Duration,
    pub keep_alive_timeout: Duration,
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let now = Instant::now();
        Box::pin(HeadWait {
            activity: self.activity.clone(),
            header_timeout: self.header_timeout,
            keep_alive_timeout: self.keep_alive_timeout,
            waiting_since: now,
            answered_before: self.activity.has_written(),
            head_began: None,
            sleep: Box::pin(tokio::time::sleep_until(now.into())),
        })
    }
}

struct HeadWait {
    activity: Arc<Activity>,
    header_timeout: Duration,
    keep_alive_timeout: Duration,
    waiting_since: Instant,
    /// Whether the connection answered a request before this wait (it is
    /// kept alive) or is new.
    answered_before: bool,
    /// When the first byte of the head was seen (the first poll after a
    /// read: hyper polls right after each one).
    head_began: Option<Instant>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl HeadWait {
    fn deadline(&mut self) -> Instant {
        if self.head_began.is_none()
            && let Some(read) = self.activity.last_read()
            && read > self.waiting_since
        {
            self.head_began = Some(read);
        }
        match self.head_began {
            Some(began) => began + self.header_timeout,
            None if self.answered_before => self.waiting_since + self.keep_alive_timeout,
            None => self.waiting_since + self.header_timeout,
        }
    }
}

impl Future for HeadWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let deadline = this.deadline();
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        if this.sleep.deadline().into_std() != deadline {
            this.sleep.as_mut().reset(deadline.into());
        }
        this.sleep.as_mut().poll(cx)
    }
}

impl Sleep for HeadWait {}
