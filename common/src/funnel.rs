//! The funnel stage of an event, defined once for the host, the reporter
//! and the publisher.
use std::{fmt, str::FromStr};

/// A funnel stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum FunnelStage {
    /// `"top"`: awareness (views, likes, ...).
    Top,
    /// `"bottom"`: conversion (clicks, purchases, ...).
    Bottom,
}

/// A funnel stage that is neither `top` nor `bottom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be top or bottom")]
pub struct UnknownFunnelStage;

impl FunnelStage {
    /// Both stages.
    pub const ALL: [FunnelStage; 2] = [FunnelStage::Top, FunnelStage::Bottom];

    /// The wire value of `funnelStage` (and of the `funnel_stage` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Top => "top",
            Self::Bottom => "bottom",
        }
    }

    /// [`FromStr`] with the error as text: the shape the reporter's
    /// parameter checker takes.
    pub fn parse(value: &str) -> Result<Self, String> {
        value.parse().map_err(|e: UnknownFunnelStage| e.to_string())
    }
}

impl fmt::Display for FunnelStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FunnelStage {
    type Err = UnknownFunnelStage;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "top" => Ok(Self::Top),
            "bottom" => Ok(Self::Bottom),
            _ => Err(UnknownFunnelStage),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for stage in FunnelStage::ALL {
            assert_eq!(stage.as_str().parse(), Ok(stage));
            assert_eq!(stage.to_string(), stage.as_str());
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(json, format!("\"{stage}\""));
            assert_eq!(serde_json::from_str::<FunnelStage>(&json).unwrap(), stage);
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "Top", "middle", " top"] {
            assert_eq!(bad.parse::<FunnelStage>(), Err(UnknownFunnelStage));
            assert_eq!(
                FunnelStage::parse(bad),
                Err("must be top or bottom".to_string())
            );
        }
    }
}
