//! "Did you mean" suggestions for misspelt names.

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = input.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::damerau_levenshtein(&lower, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= (candidate.len().max(input.len()) / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn a_near_miss_suggests_the_intended_name() {
        assert_eq!(
            closest("upsteam", ["upstream", "accepts", "target"]),
            Some("upstream")
        );
        assert_eq!(closest("timezone", ["timeZone", "cron"]), Some("timeZone"));
    }

    #[test]
    fn an_unrelated_word_suggests_nothing() {
        assert_eq!(closest("banana", ["upstream", "accepts", "target"]), None);
    }
}
