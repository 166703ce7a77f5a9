//! The `sen` binary: the platform's apps, run by the `sen` command line.

fn main() -> std::process::ExitCode {
    sen::main_with(sen::platform_apps)
}
