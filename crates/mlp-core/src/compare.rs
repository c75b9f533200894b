//! Comparing two tensors that should agree up to rounding: a tolerance that is absolute plus
//! relative, and the worst element found.

use std::fmt;

use crate::backend::StepKernels;

/// `|a − b| ≤ absolute + relative · |b|`, element by element, with `b` the reference.
///
/// The absolute part covers values near zero, where a relative bound means nothing; the
/// relative part covers large values, whose rounding error scales with them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    pub absolute: f64,
    pub relative: f64,
}

impl Tolerance {
    pub const fn new(absolute: f64, relative: f64) -> Self {
        Self { absolute, relative }
    }

    /// Whether `value` is within tolerance of `reference`.
    pub fn accepts(&self, value: f64, reference: f64) -> bool {
        (value - reference).abs() <= self.absolute + self.relative * reference.abs()
    }
}

/// How far `values` are from `reference`: the largest absolute and relative differences, and
/// the element that is worst against a tolerance.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Difference {
    pub max_absolute: f64,
    /// |a − b| / |b| over elements with b ≠ 0.
    pub max_relative: f64,
    /// The element with the largest |a − b| / (absolute + relative · |b|): its index, value and
    /// reference value.
    pub worst: Option<(usize, f64, f64)>,
    /// That element's difference in units of the tolerance: ≤ 1 passes.
    pub worst_ratio: f64,
    pub elements: usize,
}

impl Difference {
    /// Compares two equally long sequences; a NaN anywhere makes the ratio infinite.
    pub fn between(values: &[f32], reference: &[f32], tolerance: Tolerance) -> Self {
        let mut d = Difference {
            elements: values.len().min(reference.len()),
            ..Default::default()
        };
        if values.len() != reference.len() {
            d.worst_ratio = f64::INFINITY;
            return d;
        }
        for (i, (&a, &b)) in values.iter().zip(reference).enumerate() {
            let (a, b) = (f64::from(a), f64::from(b));
            let abs = (a - b).abs();
            let ratio = if abs.is_nan() {
                f64::INFINITY
            } else {
                abs / (tolerance.absolute + tolerance.relative * b.abs())
            };
            d.max_absolute = d.max_absolute.max(abs);
            if b != 0.0 {
                d.max_relative = d.max_relative.max(abs / b.abs());
            }
            if ratio > d.worst_ratio || d.worst.is_none() {
                d.worst_ratio = ratio;
                d.worst = Some((i, a, b));
            }
        }
        d
    }

    pub fn passes(&self) -> bool {
        self.worst_ratio <= 1.0
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max abs {:.3e}  max rel {:.3e}",
            self.max_absolute, self.max_relative
        )?;
        if let Some((i, a, b)) = self.worst {
            write!(
                f,
                "  worst [{i}] {a:.6e} vs {b:.6e} ({:.3} of tolerance)",
                self.worst_ratio
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_worst_element_against_the_tolerance() {
        let t = Tolerance::new(1e-3, 1e-2);
        let d = Difference::between(&[0.0, 100.5, 1.0], &[0.0005, 100.0, 1.0], t);
        assert!(d.passes(), "{d}");
        assert_eq!(d.worst.unwrap().0, 1);
        let d = Difference::between(&[0.0, 1.0], &[0.002, 1.0], t);
        assert!(!d.passes());
        assert_eq!(d.worst.unwrap().0, 0);
        assert!(!Difference::between(&[f32::NAN], &[1.0], t).passes());
        assert!(!Difference::between(&[1.0], &[1.0, 2.0], t).passes());
    }
}

/// One compared tensor of a lockstep check, named after the reference function that computes
/// it ("linear_forward A1", "hidden_delta D2", "weights_update W3"), with the function or
/// kernel of the checked backend that did ("sparse_forward", "row_forward_backward").
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub computed_by: String,
    pub difference: Difference,
}

/// Compares `other` with the `reference` trace and parameters, tensor by tensor; `kernels`
/// are what computed them on each side ([`crate::Backend::step_kernels`]).
pub fn compare_step(
    reference: (&crate::StepTrace, &crate::Parameters),
    other: (&crate::StepTrace, &crate::Parameters),
    kernels: (&StepKernels, &StepKernels),
    tolerance: Tolerance,
) -> Vec<Row> {
    let flat = |a: &ndarray::Array2<f32>| a.iter().copied().collect::<Vec<f32>>();
    let (names, computed_by) = kernels;
    let row = |name: &str, tensor: String, by: &str, a: Vec<f32>, b: Vec<f32>| Row {
        name: format!("{name} {tensor}"),
        computed_by: by.to_string(),
        difference: Difference::between(&a, &b, tolerance),
    };
    let depth = reference.1.layers.len();
    let mut rows = Vec::new();
    for k in 0..depth {
        rows.push(row(
            &names.activations[k],
            format!("A{}", k + 1),
            &computed_by.activations[k],
            flat(&other.0.activations[k]),
            flat(&reference.0.activations[k]),
        ));
    }
    for k in (0..depth).rev() {
        rows.push(row(
            &names.deltas[k],
            format!("D{}", k + 1),
            &computed_by.deltas[k],
            flat(&other.0.deltas[k]),
            flat(&reference.0.deltas[k]),
        ));
    }
    for k in 0..depth {
        let (mine, theirs) = (&other.1.layers[k], &reference.1.layers[k]);
        let (name, by) = (&names.parameters[k], &computed_by.parameters[k]);
        rows.push(row(
            name,
            format!("W{}", k + 1),
            by,
            flat(&mine.weights),
            flat(&theirs.weights),
        ));
        rows.push(row(
            name,
            format!("b{}", k + 1),
            by,
            mine.bias.to_vec(),
            theirs.bias.to_vec(),
        ));
    }
    rows
}
