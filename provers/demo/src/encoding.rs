//! Hex and the small public.json format, by hand: two tiny formats are not worth a serde build.
//!
//! public.json: `{"circuit": "<id>", "encoding": "...", "public_inputs": ["<64 hex>", ...]}`,
//! each input a BLS12-381 scalar as the hex of its 32-byte little-endian canonical encoding.

use bls12_381::Scalar;
use ff::PrimeField;

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

const ENCODING: &str = "bls12-381 scalar, 32-byte little-endian, hex";

fn inputs_list(inputs: &[Scalar]) -> String {
    inputs
        .iter()
        .map(|s| format!("\"{}\"", hex(&s.to_repr())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// public.json as written to disk.
pub fn public_json(circuit: &str, inputs: &[Scalar]) -> String {
    format!(
        "{{\n  \"circuit\": \"{circuit}\",\n  \"encoding\": \"{ENCODING}\",\n  \"public_inputs\": [{}]\n}}\n",
        inputs_list(inputs)
    )
}

/// The same document on one line, for the console.
pub fn public_json_compact(circuit: &str, inputs: &[Scalar]) -> String {
    format!(
        "{{\"circuit\":\"{circuit}\",\"encoding\":\"{ENCODING}\",\"public_inputs\":[{}]}}",
        inputs_list(inputs).replace(", ", ",")
    )
}

/// What `verify` needs from public.json.
#[derive(Debug)]
pub struct Public {
    pub circuit: String,
    pub inputs: Vec<Scalar>,
}

/// The string that follows `"key"` and a colon, skipping whitespace.
fn after_key<'a>(text: &'a str, key: &str) -> Result<&'a str, String> {
    let quoted = format!("\"{key}\"");
    let at = text.find(&quoted).ok_or(format!("no \"{key}\" field"))?;
    let rest = text[at + quoted.len()..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .ok_or(format!("\"{key}\" is not followed by ':'"))?;
    Ok(rest.trim_start())
}

/// The body of a JSON string that starts `text` (our strings never hold escapes).
fn string_at(text: &str) -> Option<(&str, &str)> {
    let body = text.strip_prefix('"')?;
    let end = body.find('"')?;
    let value = &body[..end];
    if value.contains('\\') {
        return None;
    }
    Some((value, &body[end + 1..]))
}

/// Parse public.json (only the fields this prover writes; unknown fields are ignored).
pub fn parse_public_json(text: &str) -> Result<Public, String> {
    let (circuit, _) =
        string_at(after_key(text, "circuit")?).ok_or("\"circuit\" is not a string")?;
    let mut rest = after_key(text, "public_inputs")?
        .strip_prefix('[')
        .ok_or("\"public_inputs\" is not a list")?
        .trim_start();
    let mut inputs = Vec::new();
    loop {
        if rest.starts_with(']') {
            break;
        }
        let (value, after) = string_at(rest).ok_or("\"public_inputs\" must hold hex strings")?;
        let bytes: [u8; 32] = unhex(value)
            .and_then(|b| b.try_into().ok())
            .ok_or(format!("public input `{value}` is not 64 hex digits"))?;
        let scalar = Option::<Scalar>::from(Scalar::from_repr(bytes)).ok_or(format!(
            "public input `{value}` is not a canonical BLS12-381 scalar"
        ))?;
        inputs.push(scalar);
        rest = after.trim_start();
        rest = rest.strip_prefix(',').map(str::trim_start).unwrap_or(rest);
    }
    Ok(Public {
        circuit: circuit.to_string(),
        inputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_json_round_trips_in_both_layouts() {
        let inputs = [Scalar::from(7u64), -Scalar::from(1u64)];
        for text in [
            public_json("c/v1", &inputs),
            public_json_compact("c/v1", &inputs),
        ] {
            let parsed = parse_public_json(&text).unwrap();
            assert_eq!(parsed.circuit, "c/v1");
            assert_eq!(parsed.inputs, inputs);
        }
    }

    #[test]
    fn rejects_non_canonical_and_short_inputs() {
        let bad = "{\"circuit\":\"c\",\"public_inputs\":[\"ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\"]}";
        assert!(parse_public_json(bad).unwrap_err().contains("canonical"));
        let short = "{\"circuit\":\"c\",\"public_inputs\":[\"abcd\"]}";
        assert!(parse_public_json(short).unwrap_err().contains("64 hex"));
    }
}
