//! `bottle check [PATH...]`: validate bottle and agent files and report every invalid
//! one.

use bottle_manifest::Sources;

use crate::cli::CheckArgs;
use crate::exit::Exit;

pub fn run(args: &CheckArgs) -> Exit {
    if let Some(missing) = args.paths.iter().find(|path| !path.exists()) {
        eprintln!("bottle check: {} does not exist", missing.display());
        return Exit::Usage;
    }
    let sources = match std::env::current_dir()
        .map_err(|error| format!("cannot read the current directory: {error}"))
        .and_then(|cwd| Sources::discover(&cwd).map_err(|error| error.to_string()))
    {
        Ok(sources) => sources,
        Err(message) => {
            eprintln!("bottle check: {message}");
            return Exit::Failure;
        }
    };

    let results = if args.paths.is_empty() {
        bottle_manifest::check_all(&sources)
    } else {
        bottle_manifest::check_paths(&sources, &args.paths)
    };

    if results.is_empty() {
        println!("no bottle or agent files found");
        return Exit::Success;
    }
    let mut invalid = 0;
    for result in &results {
        if let Some(error) = &result.error {
            invalid += 1;
            println!("{error}");
        }
    }
    let files = if results.len() == 1 { "file" } else { "files" };
    println!("checked {} {files}: {invalid} invalid", results.len());
    if invalid > 0 {
        Exit::Failure
    } else {
        Exit::Success
    }
}
