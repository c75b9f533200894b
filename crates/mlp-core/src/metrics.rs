//! Numbers made from what a backend reports: the confusion matrix of a set of predictions.

use std::fmt;

/// counts\[label\]\[prediction\]: row = the true digit, column = the network's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    pub counts: Vec<Vec<usize>>,
}

impl ConfusionMatrix {
    /// `classes` x `classes` counts, widened where a label or a prediction lies beyond them:
    /// at most 256 rows (labels are bytes) and the network's outputs as columns.
    pub fn new(classes: usize, labels: &[u8], predictions: &[u32]) -> Self {
        let widest = |found: Option<usize>| found.map_or(0, |c| c + 1);
        let classes = classes
            .max(widest(labels.iter().max().map(|&l| usize::from(l))))
            .max(widest(predictions.iter().max().map(|&p| p as usize)));
        let mut counts = vec![vec![0; classes]; classes];
        for (&label, &prediction) in labels.iter().zip(predictions) {
            counts[usize::from(label)][prediction as usize] += 1;
        }
        Self { counts }
    }

    /// The fraction on the diagonal.
    pub fn accuracy(&self) -> f64 {
        let total: usize = self.counts.iter().flatten().sum();
        let correct: usize = (0..self.counts.len()).map(|i| self.counts[i][i]).sum();
        correct as f64 / total.max(1) as f64
    }
}

impl fmt::Display for ConfusionMatrix {
    /// Rows are true digits, columns predictions.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "true\\pred")?;
        for class in 0..self.counts.len() {
            write!(f, "{class:>6}")?;
        }
        writeln!(f)?;
        for (label, row) in self.counts.iter().enumerate() {
            write!(f, "{label:>9}")?;
            for count in row {
                write!(f, "{count:>6}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_on_label_row_and_prediction_column() {
        let m = ConfusionMatrix::new(3, &[0, 1, 2, 2], &[0, 2, 2, 1]);
        assert_eq!(m.counts, vec![vec![1, 0, 0], vec![0, 0, 1], vec![0, 1, 1]]);
        assert_eq!(m.accuracy(), 0.5);
        assert!(m.to_string().lines().count() == 4);
    }
}
