//! The roles a process can play. `sen dev` plays all three; production
//! splits them across `sen serve` and `sen worker`.

use std::fmt;

/// One role of a Sen process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves HTTP (REST, WebSocket, pages).
    Web,
    /// Turns cron schedules into jobs.
    Scheduler,
    /// Runs jobs and event handlers.
    Worker,
}

impl Role {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Web => "web",
            Role::Scheduler => "scheduler",
            Role::Worker => "worker",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
