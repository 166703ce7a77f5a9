//! Topic and event names: what a valid one looks like. Topics are
//! `:`-separated segments (`user:0192…`, `post:42`); the characters `,` and
//! `=` never occur, so a list of topics and an SSE resume cursor can be
//! written without escaping.

/// Longest topic name.
pub const MAX_TOPIC_LEN: usize = 160;
/// Longest event name.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `topic` is well formed.
pub fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= MAX_TOPIC_LEN
        && topic.split(':').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
}

/// Whether `name` is a well-formed event name (`notification`, `job.dead`).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_names() {
        for ok in ["user:0192abcd-ef", "post:42", "admin:jobs", "a"] {
            assert!(valid_topic(ok), "{ok}");
        }
        for bad in [
            "",
            "user:",
            ":x",
            "a::b",
            "a,b",
            "a=b",
            "a b",
            &"x".repeat(161),
        ] {
            assert!(!valid_topic(bad), "{bad:?}");
        }
        assert!(valid_name("job.dead"));
        assert!(!valid_name("Job"));
        assert!(!valid_name(""));
    }
}
