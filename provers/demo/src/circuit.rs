//! The demo circuit: knowledge of a MiMC preimage over the BLS12-381 scalar field.
//!
//! MiMC variant `LongsightF322p3` (eprint 2016/492), the construction bellman's own
//! examples use: 322 rounds of `xL, xR := xR + (xL + C_i)^3, xL`, two R1CS
//! constraints per round, so 644 constraints and one public input (the image).

use bellman::{Circuit, ConstraintSystem, SynthesisError};
use bls12_381::Scalar;
use ff::Field;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// Number of MiMC rounds; fixes the circuit (and so the parameters).
pub const MIMC_ROUNDS: usize = 322;

/// Stable name of the circuit, written into public.json and checked by `verify`.
pub const CIRCUIT_ID: &str = "uniprove-demo/mimc-longsightf322p3/bls12-381/v1";

/// The round constants are part of the circuit, not of the setup: they come from a fixed
/// seed so every build of this prover agrees on them whatever `--seed` says.
pub fn round_constants() -> Vec<Scalar> {
    let mut rng = ChaCha20Rng::from_seed(*b"uniprove-demo/mimc-constants/v1\0");
    (0..MIMC_ROUNDS).map(|_| Scalar::random(&mut rng)).collect()
}

/// The preimage a prover knows for `--input N`: xL = N, xR = N + 1.
pub fn preimage(input: u64) -> (Scalar, Scalar) {
    (Scalar::from(input), Scalar::from(input) + Scalar::ONE)
}

/// MiMC evaluated natively: the public image of a preimage.
pub fn mimc(mut xl: Scalar, mut xr: Scalar, constants: &[Scalar]) -> Scalar {
    for c in constants {
        let t = xl + c;
        let next = t.square() * t + xr;
        xr = xl;
        xl = next;
    }
    xl
}

/// The circuit. With `None` witnesses it only shapes the constraint system (setup).
/// `claimed_image` overrides the public output the prover assigns: a wrong value makes the
/// witness unsatisfiable, which is how `prove --fail` produces a proof that must not verify.
pub struct MimcCircuit<'a> {
    pub xl: Option<Scalar>,
    pub xr: Option<Scalar>,
    pub claimed_image: Option<Scalar>,
    pub constants: &'a [Scalar],
}

impl Circuit<Scalar> for MimcCircuit<'_> {
    fn synthesize<CS: ConstraintSystem<Scalar>>(self, cs: &mut CS) -> Result<(), SynthesisError> {
        let mut xl_value = self.xl;
        let mut xl = cs.alloc(
            || "preimage xl",
            || xl_value.ok_or(SynthesisError::AssignmentMissing),
        )?;
        let mut xr_value = self.xr;
        let mut xr = cs.alloc(
            || "preimage xr",
            || xr_value.ok_or(SynthesisError::AssignmentMissing),
        )?;

        for (i, c) in self.constants.iter().enumerate() {
            let cs = &mut cs.namespace(|| format!("round {i}"));
            let c = *c;

            // tmp = (xL + C)^2
            let tmp_value = xl_value.map(|v| (v + c).square());
            let tmp = cs.alloc(
                || "tmp",
                || tmp_value.ok_or(SynthesisError::AssignmentMissing),
            )?;
            cs.enforce(
                || "tmp = (xL + C)^2",
                |lc| lc + xl + (c, CS::one()),
                |lc| lc + xl + (c, CS::one()),
                |lc| lc + tmp,
            );

            // new_xL - xR = tmp * (xL + C)
            let new_xl_value = match (xl_value, tmp_value, xr_value) {
                (Some(l), Some(t), Some(r)) => Some(t * (l + c) + r),
                _ => None,
            };
            let new_xl = if i == self.constants.len() - 1 {
                let image = self.claimed_image.or(new_xl_value);
                cs.alloc_input(
                    || "image",
                    || image.ok_or(SynthesisError::AssignmentMissing),
                )?
            } else {
                cs.alloc(
                    || "new_xl",
                    || new_xl_value.ok_or(SynthesisError::AssignmentMissing),
                )?
            };
            cs.enforce(
                || "new_xL = xR + (xL + C)^3",
                |lc| lc + tmp,
                |lc| lc + xl + (c, CS::one()),
                |lc| lc + new_xl - xr,
            );

            xr = xl;
            xr_value = xl_value;
            xl = new_xl;
            xl_value = new_xl_value;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellman::gadgets::test::TestConstraintSystem;

    fn synthesize(input: u64, claimed_image: Option<Scalar>) -> TestConstraintSystem<Scalar> {
        let constants = round_constants();
        let (xl, xr) = preimage(input);
        let mut cs = TestConstraintSystem::new();
        MimcCircuit {
            xl: Some(xl),
            xr: Some(xr),
            claimed_image,
            constants: &constants,
        }
        .synthesize(&mut cs)
        .unwrap();
        cs
    }

    #[test]
    fn the_honest_witness_satisfies_all_644_constraints() {
        let cs = synthesize(42, None);
        assert_eq!(cs.num_constraints(), 2 * MIMC_ROUNDS);
        assert!(cs.is_satisfied());
    }

    #[test]
    fn a_wrong_claimed_image_is_unsatisfiable() {
        let (xl, xr) = preimage(42);
        let image = mimc(xl, xr, &round_constants());
        assert!(synthesize(42, Some(image)).is_satisfied());
        assert!(!synthesize(42, Some(image + Scalar::ONE)).is_satisfied());
    }
}
