use std::process::ExitCode;

use image_edit_demo::cli::{self, Command, Env};
use image_edit_demo::{edit, generate, logging, server};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = match cli::parse(&args, &Env::from_process()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("image-edit-demo: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("image-edit-demo {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::GenWeights { dir } => match generate::write_all(&dir) {
            Ok(paths) => {
                for p in paths {
                    println!("{}", p.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("image-edit-demo: gen-weights: {e}");
                ExitCode::FAILURE
            }
        },
        Command::SampleImage { out, width, height } => {
            match edit::sample_image(width, height).save(&out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("image-edit-demo: sample-image: {}: {e}", out.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(opts) => match server::run(&opts) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                logging::error(&e);
                ExitCode::FAILURE
            }
        },
    }
}
