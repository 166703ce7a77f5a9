//! The `sen` binary: the platform's apps, run by the `sen` command line.

/// mimalloc instead of glibc's malloc: requests allocate and free many
/// small buffers across threads, where glibc's arenas spend several per
/// cent of a request in `malloc`/`free` and their consolidation.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sen::main_with(sen::platform_apps)
}
