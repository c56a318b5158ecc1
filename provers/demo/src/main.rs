//! uniprove-demo-prover: a small, real Groth16 prover used as uniprove's end-to-end subject.
//!
//! Exit codes: 0 success, 1 proof INVALID (verify), 2 usage error, 3 the prover's proof failed
//! its own verification (bad witness), 4 a file could not be read, decoded or written.

mod circuit;
mod encoding;

use std::fs;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use bls12_381::{Bls12, Scalar};
use ff::Field;
use groth16::{Parameters, Proof, VerifyingKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use circuit::{CIRCUIT_ID, MIMC_ROUNDS, MimcCircuit, mimc, preimage, round_constants};

const VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_SEED: u64 = 1;
const DEFAULT_INPUT: u64 = 42;

const USAGE: &str = "\
uniprove-demo-prover: prove knowledge of a MiMC preimage with Groth16 over BLS12-381

Usage:
  uniprove-demo-prover setup  --out DIR [--seed N]
  uniprove-demo-prover prove  --out DIR [--params DIR|FILE] [--seed N] [--input N]
                              [--proof-seed N] [--fail]
  uniprove-demo-prover verify --dir DIR | --vk FILE --proof FILE --public FILE

setup   writes DIR/params.bin and DIR/vk.bin, derived only from --seed (default 1).
prove   reads params.bin from --params (or, without --params, generates the parameters in
        memory from --seed), proves for private input --input (default 42), checks the proof
        against its own verifying key, then writes proof.bin, public.json and vk.bin into
        --out and prints the proof as hex between UNIPROVE-PROOF-BEGIN/END lines.
        --proof-seed N makes the proof bytes reproducible; --fail claims a wrong public
        output, so the proof cannot verify and the prover exits 3.
verify  checks proof.bin and public.json against vk.bin (--dir DIR takes all three from
        DIR; --vk/--proof/--public override single files). Prints `proof OK` (exit 0)
        or `proof INVALID: why` (exit 1).

Exit codes: 0 ok, 1 proof invalid, 2 usage, 3 prover self-check failed, 4 file error.
";

/// A failure with the exit code it maps to.
struct Failure {
    code: u8,
    message: String,
}

fn fail<T>(code: u8, message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure {
        code,
        message: message.into(),
    })
}

fn usage<T>(message: impl Into<String>) -> Result<T, Failure> {
    fail(
        2,
        format!(
            "{}\nRun `uniprove-demo-prover --help` for usage.",
            message.into()
        ),
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("-h" | "--help" | "help") => {
            print!("{USAGE}");
            Ok(())
        }
        Some("-V" | "--version") => {
            println!("uniprove-demo-prover {VERSION} ({CIRCUIT_ID})");
            Ok(())
        }
        Some(command @ ("setup" | "prove" | "verify")) => {
            Flags::parse(&args[1..]).and_then(|flags| match command {
                "setup" => setup(&flags),
                "prove" => prove(&flags),
                _ => verify(&flags),
            })
        }
        Some(other) => usage(format!(
            "unknown command `{other}` (expected setup, prove or verify)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if failure.code == 1 {
                println!("{}", failure.message);
            } else {
                eprintln!("uniprove-demo-prover: error: {}", failure.message);
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Parsed command-line flags; each command checks which ones it accepts.
#[derive(Default)]
struct Flags {
    values: Vec<(String, String)>,
    switches: Vec<String>,
}

impl Flags {
    const WITH_VALUE: &[&str] = &[
        "--out",
        "--seed",
        "--params",
        "--input",
        "--proof-seed",
        "--dir",
        "--vk",
        "--proof",
        "--public",
    ];
    const SWITCHES: &[&str] = &["--fail"];

    fn parse(args: &[String]) -> Result<Self, Failure> {
        let mut flags = Flags::default();
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            if Self::SWITCHES.contains(&name.as_str()) {
                flags.switches.push(name);
            } else if Self::WITH_VALUE.contains(&name.as_str()) {
                let value = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => return usage(format!("{name} needs a value")),
                        }
                    }
                };
                if flags.values.iter().any(|(n, _)| *n == name) {
                    return usage(format!("{name} given twice"));
                }
                flags.values.push((name, value));
            } else {
                return usage(format!("unknown argument `{arg}`"));
            }
            i += 1;
        }
        Ok(flags)
    }

    fn only(&self, command: &str, allowed: &[&str]) -> Result<(), Failure> {
        let names = self
            .values
            .iter()
            .map(|(n, _)| n)
            .chain(self.switches.iter());
        for name in names {
            if !allowed.contains(&name.as_str()) {
                return usage(format!("`{command}` does not take {name}"));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn path(&self, name: &str) -> Result<PathBuf, Failure> {
        match self.get(name) {
            Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
            _ => usage(format!("{name} DIR is required")),
        }
    }

    fn number(&self, name: &str, default: u64) -> Result<u64, Failure> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().or_else(|_| {
                usage(format!(
                    "{name} must be a whole number from 0 to {}, got `{v}`",
                    u64::MAX
                ))
            }),
        }
    }
}

/// A 32-byte ChaCha seed from a number and a purpose tag, spelled out so it never depends on
/// how a crate version expands integers into seeds.
fn chacha(tag: &[u8], n: u64) -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&n.to_le_bytes());
    seed[8..8 + tag.len()].copy_from_slice(tag);
    ChaCha20Rng::from_seed(seed)
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn generate_params(seed: u64, constants: &[Scalar]) -> Result<Parameters<Bls12>, Failure> {
    let blank = MimcCircuit {
        xl: None,
        xr: None,
        claimed_image: None,
        constants,
    };
    groth16::generate_random_parameters::<Bls12, _, _>(
        blank,
        &mut chacha(b"uniprove-demo/setup", seed),
    )
    .or_else(|e| fail(4, format!("parameter generation failed: {e}")))
}

/// Write bytes to `dir/name` through a temp file and a rename, so no half-written file remains.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, Failure> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = fs::File::create(&temp).and_then(|file| {
        let mut w = BufWriter::new(file);
        w.write_all(bytes)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&temp, &target)) {
        let _ = fs::remove_file(&temp);
        return fail(4, format!("cannot write {}: {e}", target.display()));
    }
    Ok(target)
}

fn make_dir(dir: &Path) -> Result<(), Failure> {
    fs::create_dir_all(dir)
        .or_else(|e| fail(4, format!("cannot create directory {}: {e}", dir.display())))
}

fn read_file(path: &Path, what: &str) -> Result<Vec<u8>, Failure> {
    fs::read(path).or_else(|e| fail(4, format!("cannot read {what} {}: {e}", path.display())))
}

fn vk_bytes(vk: &VerifyingKey<Bls12>) -> Vec<u8> {
    let mut out = Vec::new();
    vk.write(&mut out).expect("writing to a Vec cannot fail");
    out
}

fn setup(flags: &Flags) -> Result<(), Failure> {
    flags.only("setup", &["--out", "--seed"])?;
    let out = flags.path("--out")?;
    let seed = flags.number("--seed", DEFAULT_SEED)?;
    let started = Instant::now();
    let params = generate_params(seed, &round_constants())?;
    let setup_ms = ms(started);
    let mut params_bytes = Vec::new();
    params
        .write(&mut params_bytes)
        .expect("writing to a Vec cannot fail");
    make_dir(&out)?;
    let params_path = write_atomic(&out, "params.bin", &params_bytes)?;
    let vk_path = write_atomic(&out, "vk.bin", &vk_bytes(&params.vk))?;
    println!(
        "circuit: {CIRCUIT_ID} ({} constraints, 1 public input)",
        2 * MIMC_ROUNDS
    );
    println!("setup: seed {seed}, {setup_ms:.1} ms");
    println!(
        "wrote {} ({} bytes)",
        params_path.display(),
        params_bytes.len()
    );
    println!("wrote {}", vk_path.display());
    Ok(())
}

fn prove(flags: &Flags) -> Result<(), Failure> {
    flags.only(
        "prove",
        &[
            "--out",
            "--params",
            "--seed",
            "--input",
            "--proof-seed",
            "--fail",
        ],
    )?;
    let out = flags.path("--out")?;
    let seed = flags.number("--seed", DEFAULT_SEED)?;
    let input = flags.number("--input", DEFAULT_INPUT)?;
    let proof_seed = flags
        .get("--proof-seed")
        .map(|_| flags.number("--proof-seed", 0))
        .transpose()?;
    if flags.get("--params").is_some() && flags.get("--seed").is_some() {
        return usage(
            "--seed only applies without --params (the parameters file already fixes it)",
        );
    }
    let total = Instant::now();
    println!("uniprove-demo-prover {VERSION}");
    println!(
        "circuit: {CIRCUIT_ID} ({} constraints, 1 public input)",
        2 * MIMC_ROUNDS
    );
    let constants = round_constants();

    let started = Instant::now();
    let params = match flags.get("--params") {
        Some(p) => {
            let mut path = PathBuf::from(p);
            if path.is_dir() {
                path.push("params.bin");
            }
            let file = fs::File::open(&path)
                .or_else(|e| fail(4, format!("cannot read parameters {}: {e} (run `setup --out DIR` first, or leave out --params to generate them from --seed)", path.display())))?;
            let params = Parameters::<Bls12>::read(BufReader::new(file), true).or_else(|e| {
                fail(
                    4,
                    format!(
                        "{} is not a parameters file for this prover: {e}",
                        path.display()
                    ),
                )
            })?;
            println!("params: read {} in {:.1} ms", path.display(), ms(started));
            params
        }
        None => {
            let params = generate_params(seed, &constants)?;
            println!(
                "params: generated in memory from seed {seed} in {:.1} ms",
                ms(started)
            );
            params
        }
    };
    let params_ms = ms(started);

    let (xl, xr) = preimage(input);
    let image = mimc(xl, xr, &constants);
    let claimed = if flags.has("--fail") {
        image + Scalar::ONE
    } else {
        image
    };
    println!(
        "witness: private input {input}{}",
        if flags.has("--fail") {
            " (--fail: claiming a wrong public output)"
        } else {
            ""
        }
    );

    let started = Instant::now();
    let circuit = MimcCircuit {
        xl: Some(xl),
        xr: Some(xr),
        claimed_image: Some(claimed),
        constants: &constants,
    };
    let proof = match proof_seed {
        Some(n) => {
            groth16::create_random_proof(circuit, &params, &mut chacha(b"uniprove-demo/proof", n))
        }
        None => {
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).or_else(|e| {
                fail(
                    4,
                    format!("no OS randomness for proof blinding: {e} (pass --proof-seed N)"),
                )
            })?;
            groth16::create_random_proof(circuit, &params, &mut ChaCha20Rng::from_seed(seed))
        }
    }
    .or_else(|e| {
        fail(
            4,
            format!("proving failed: {e} (are the parameters for this circuit?)"),
        )
    })?;
    let prove_ms = ms(started);
    println!("prove: {prove_ms:.1} ms");

    // The prover checks its own proof so a bad witness fails here, not on the host.
    let started = Instant::now();
    let pvk = groth16::prepare_verifying_key(&params.vk);
    let checked = groth16::verify_proof(&pvk, &proof, &[claimed]);
    let verify_ms = ms(started);
    if let Err(e) = checked {
        return fail(
            3,
            format!(
                "the proof does not verify against the parameters' own verifying key ({e:?}): the witness does not satisfy the circuit; nothing was written"
            ),
        );
    }
    println!("self-check: proof OK in {verify_ms:.1} ms");

    let mut proof_bytes = Vec::new();
    proof
        .write(&mut proof_bytes)
        .expect("writing to a Vec cannot fail");
    let public = encoding::public_json(CIRCUIT_ID, &[claimed]);
    make_dir(&out)?;
    let vk_path = write_atomic(&out, "vk.bin", &vk_bytes(&params.vk))?;
    let public_path = write_atomic(&out, "public.json", public.as_bytes())?;
    let proof_path = write_atomic(&out, "proof.bin", &proof_bytes)?;
    println!(
        "wrote {} ({} bytes), {}, {}",
        proof_path.display(),
        proof_bytes.len(),
        public_path.display(),
        vk_path.display()
    );

    let mut console = String::from("UNIPROVE-PROOF-BEGIN\n");
    for chunk in encoding::hex(&proof_bytes).as_bytes().chunks(64) {
        console.push_str(std::str::from_utf8(chunk).expect("hex is ASCII"));
        console.push('\n');
    }
    console.push_str("UNIPROVE-PROOF-END\nUNIPROVE-PUBLIC-BEGIN\n");
    console.push_str(&encoding::public_json_compact(CIRCUIT_ID, &[claimed]));
    console.push_str("\nUNIPROVE-PUBLIC-END\n");
    console.push_str(&format!(
        "timings: {{\"params_ms\":{params_ms:.1},\"prove_ms\":{prove_ms:.1},\"verify_ms\":{verify_ms:.1},\"total_ms\":{:.1}}}\n",
        ms(total)
    ));
    // One write so the block reaches a serial console in one piece.
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(console.as_bytes())
        .and_then(|()| stdout.flush())
        .or_else(|e| fail(4, format!("cannot write to stdout: {e}")))?;
    Ok(())
}

fn verify(flags: &Flags) -> Result<(), Failure> {
    flags.only("verify", &["--dir", "--vk", "--proof", "--public"])?;
    let dir = flags.get("--dir").map(PathBuf::from);
    let pick = |flag: &str, file: &str| -> Result<PathBuf, Failure> {
        match (flags.get(flag), &dir) {
            (Some(p), _) => Ok(PathBuf::from(p)),
            (None, Some(d)) => Ok(d.join(file)),
            (None, None) => usage(format!(
                "verify needs {flag} FILE (or --dir DIR holding {file})"
            )),
        }
    };
    let vk_path = pick("--vk", "vk.bin")?;
    let proof_path = pick("--proof", "proof.bin")?;
    let public_path = pick("--public", "public.json")?;

    let vk_bytes = read_file(&vk_path, "verifying key")?;
    let proof_bytes = read_file(&proof_path, "proof")?;
    let public_bytes = read_file(&public_path, "public inputs")?;

    let vk = VerifyingKey::<Bls12>::read(&vk_bytes[..]).or_else(|e| {
        fail(
            4,
            format!("{} is not a verifying key: {e}", vk_path.display()),
        )
    })?;
    let invalid = |why: String| fail::<()>(1, format!("proof INVALID: {why}"));
    if proof_bytes.len() != 192 {
        return invalid(format!(
            "{} is {} bytes, a proof is 192",
            proof_path.display(),
            proof_bytes.len()
        ));
    }
    let proof = match Proof::<Bls12>::read(&proof_bytes[..]) {
        Ok(p) => p,
        Err(e) => return invalid(format!("{} does not decode: {e}", proof_path.display())),
    };
    let public = match encoding::parse_public_json(std::str::from_utf8(&public_bytes).unwrap_or(""))
    {
        Ok(p) => p,
        Err(e) => return invalid(format!("{}: {e}", public_path.display())),
    };
    if public.circuit != CIRCUIT_ID {
        return invalid(format!(
            "public.json is for circuit `{}`, this verifier checks `{CIRCUIT_ID}`",
            public.circuit
        ));
    }
    let started = Instant::now();
    let pvk = groth16::prepare_verifying_key(&vk);
    match groth16::verify_proof(&pvk, &proof, &public.inputs) {
        Ok(()) => {
            println!("proof OK ({:.1} ms)", ms(started));
            Ok(())
        }
        Err(e) => invalid(format!("{e:?}")),
    }
}
