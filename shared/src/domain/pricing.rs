//! Price per compute-hour for one node and one hour, from the weather and the energy price.
//!
//! Weather -> wet-bulb -> cooling plant (free cooling, chiller COP, PUE, server inlet) ->
//! capacity derating and IT power -> USD per c-hr. Formulas and reference values are those of
//! docs/DOMAIN.md; each is checked against them in the tests below.

use serde::{Deserialize, Serialize};

/// How the site rejects heat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoolingKind {
    /// Cooling tower with a water-side economizer: works from the wet-bulb.
    WaterEconomizer,
    /// Air-cooled chiller with a dry-cooler economizer: works from the dry-bulb.
    AirCooled,
}

/// ASHRAE thermal class of the IT equipment: sets the allowable inlet maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AshraeClass {
    A1,
    A2,
    A3,
    A4,
}

impl AshraeClass {
    /// Upper end of the class's allowable inlet envelope, deg C.
    pub fn allowable_max_c(self) -> f64 {
        match self {
            AshraeClass::A1 => 32.0,
            AshraeClass::A2 => 35.0,
            AshraeClass::A3 => 40.0,
            AshraeClass::A4 => 45.0,
        }
    }
}

/// A parameter out of its accepted range: names the field and the value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {value}: {expected}")]
pub struct ParamError {
    pub field: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// `Ok` when `value` lies in `lo..=hi`; NaN never does.
fn check_range(
    field: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    expected: &'static str,
) -> Result<(), ParamError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(ParamError {
            field,
            value: value.to_string(),
            expected,
        })
    }
}

/// The cooling plant of one site. Serde fills missing fields from [`CoolingPlant::default`]
/// (the water plant), so an air-cooled config must spell out its own eta and overhead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoolingPlant {
    pub kind: CoolingKind,
    /// Chiller efficiency as a fraction of Carnot; 0.3..=0.9 accepted.
    pub eta: f64,
    /// Chilled-water supply, deg C.
    pub chw_supply_c: f64,
    /// Chilled-water return, deg C.
    pub chw_return_c: f64,
    /// Everything but the chiller, as a fraction of IT power: distribution, fans, pumps,
    /// tower, misc.
    pub overhead: f64,
    pub ashrae_class: AshraeClass,
    /// Server inlet the plant holds up to `design_outdoor_c`, deg C.
    pub inlet_setpoint_c: f64,
    /// Outdoor dry-bulb up to which the plant holds the setpoint, deg C.
    pub design_outdoor_c: f64,
}

impl Default for CoolingPlant {
    /// The water-economizer plant of DOMAIN.md.
    fn default() -> Self {
        Self {
            kind: CoolingKind::WaterEconomizer,
            eta: 0.55,
            chw_supply_c: 18.0,
            chw_return_c: 24.0,
            // distribution 0.05 + fans 0.04 + pumps 0.02 + tower 0.01 + misc 0.01
            overhead: 0.13,
            ashrae_class: AshraeClass::A2,
            inlet_setpoint_c: 24.0,
            // Assumption: a typical 0.4 % design dry-bulb for a warm site.
            design_outdoor_c: 35.0,
        }
    }
}

impl CoolingPlant {
    /// A legacy air-cooled plant: dry-cooler economizer and air-cooled condenser, both on the
    /// dry-bulb, eta 0.45. Overheads: distribution 0.10 (older UPS and transformers), CRAC and
    /// condenser fans 0.14, pumps 0.03, humidification, lighting and misc 0.05. Calibrated so
    /// PUE is about 1.56 at 35 C (DOMAIN.md: 1.5..1.6).
    pub fn air_cooled_legacy() -> Self {
        Self {
            kind: CoolingKind::AirCooled,
            eta: 0.45,
            overhead: 0.10 + 0.14 + 0.03 + 0.05,
            ..Self::default()
        }
    }

    pub fn validate(&self) -> Result<(), ParamError> {
        check_range("eta", self.eta, 0.3, 0.9, "expected 0.3..=0.9")?;
        check_range(
            "chw_supply_c",
            self.chw_supply_c,
            5.0,
            30.0,
            "expected 5..=30 deg C",
        )?;
        // The return must exceed the supply or the free-cooling fraction divides by zero.
        check_range(
            "chw_return_c",
            self.chw_return_c,
            self.chw_supply_c + 0.5,
            40.0,
            "expected at least chw_supply_c + 0.5 and at most 40 deg C",
        )?;
        check_range("overhead", self.overhead, 0.0, 2.0, "expected 0..=2")?;
        check_range(
            "inlet_setpoint_c",
            self.inlet_setpoint_c,
            5.0,
            self.ashrae_class.allowable_max_c(),
            "expected 5 deg C up to the ASHRAE class's allowable maximum",
        )?;
        check_range(
            "design_outdoor_c",
            self.design_outdoor_c,
            -50.0,
            60.0,
            "expected -50..=60 deg C",
        )
    }
}

/// Power drawn by one compute unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PowerProfile {
    /// Idle W per unit.
    pub w_min: f64,
    /// Full-load W per unit.
    pub w_max: f64,
    /// 0..=1.
    pub utilisation: f64,
    /// GB of memory per unit.
    pub mem_gb: f64,
}

impl Default for PowerProfile {
    /// An AWS-like vCPU (DOMAIN.md) at 50 % utilisation with 2 GB.
    fn default() -> Self {
        Self {
            w_min: 0.74,
            w_max: 3.5,
            utilisation: 0.5,
            mem_gb: 2.0,
        }
    }
}

impl PowerProfile {
    pub fn validate(&self) -> Result<(), ParamError> {
        // Upper bounds leave room for GPU units (hundreds of W) but catch unit mix-ups (kW).
        check_range("w_min", self.w_min, 0.0, 5_000.0, "expected 0..=5000 W")?;
        check_range(
            "w_max",
            self.w_max,
            self.w_min,
            5_000.0,
            "expected w_min..=5000 W",
        )?;
        check_range("utilisation", self.utilisation, 0.0, 1.0, "expected 0..=1")?;
        check_range("mem_gb", self.mem_gb, 0.0, 4_096.0, "expected 0..=4096 GB")
    }
}

/// Wet-bulb temperature, Stull (2011), deg C. Valid for RH 5..99 % and T -20..50 C; this is the
/// bare formula, [`cooling`] clamps its inputs.
pub fn wet_bulb_stull(t_c: f64, rh_pct: f64) -> f64 {
    t_c * (0.151977 * (rh_pct + 8.313659).sqrt()).atan() + (t_c + rh_pct).atan()
        - (rh_pct - 1.676331).atan()
        + 0.00391838 * rh_pct.powf(1.5) * (0.023101 * rh_pct).atan()
        - 4.686035
}

const MAGNUS_A: f64 = 17.625;
const MAGNUS_B: f64 = 243.04;

/// Dew point from temperature and RH, Magnus form, deg C.
pub fn dew_point_magnus(t_c: f64, rh_pct: f64) -> f64 {
    let g = (rh_pct / 100.0).ln() + MAGNUS_A * t_c / (MAGNUS_B + t_c);
    MAGNUS_B * g / (MAGNUS_A - g)
}

/// Relative humidity, %, from temperature and dew point (inverse of [`dew_point_magnus`]).
pub fn rh_from_dew_point(t_c: f64, td_c: f64) -> f64 {
    100.0 * (MAGNUS_A * td_c / (MAGNUS_B + td_c) - MAGNUS_A * t_c / (MAGNUS_B + t_c)).exp()
}

const KELVIN: f64 = 273.15;
/// Evaporator runs this far below the chilled-water supply.
const EVAP_APPROACH_K: f64 = 2.0;
const COP_MIN: f64 = 2.0;
const COP_MAX: f64 = 12.0;

/// Chiller COP: a fraction `eta` of Carnot between evaporator and condenser, clamped 2..12.
pub fn chiller_cop(plant: &CoolingPlant, condenser_c: f64) -> f64 {
    let t_evap_c = plant.chw_supply_c - EVAP_APPROACH_K;
    let lift = condenser_c - t_evap_c;
    // No lift (condenser colder than evaporator): Carnot is unbounded, the clamp's top applies.
    if lift <= 0.0 {
        return COP_MAX;
    }
    (plant.eta * (t_evap_c + KELVIN) / lift).clamp(COP_MIN, COP_MAX)
}

/// Share of the heat the economizer rejects without the chiller, 0..=1.
pub fn free_cooling_fraction(plant: &CoolingPlant, economizer_c: f64) -> f64 {
    ((plant.chw_return_c - economizer_c) / (plant.chw_return_c - plant.chw_supply_c))
        .clamp(0.0, 1.0)
}

/// Water plant approaches (DOMAIN.md), over the wet-bulb.
const TOWER_APPROACH_K: f64 = 4.0;
const WATER_ECON_OVER_TOWER_K: f64 = 2.0;
const WATER_COND_OVER_TOWER_K: f64 = 3.0;
/// Air-cooled approaches, our assumption, over the dry-bulb: a dry cooler delivers water about
/// 6 K above ambient (full free cooling below 12 C, none above 18 C with 18/24 C chilled
/// water); an air-cooled condenser condenses about 12 K above ambient.
const AIR_ECON_APPROACH_K: f64 = 6.0;
const AIR_COND_APPROACH_K: f64 = 12.0;

/// Stull's validity range; inputs are clamped into it before the formula.
const STULL_RH_RANGE: (f64, f64) = (5.0, 99.0);
const STULL_T_RANGE: (f64, f64) = (-20.0, 50.0);

/// The cooling state for one weather observation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cooling {
    pub pue: f64,
    /// The wet-bulb used (equals dry-bulb when humidity was missing).
    pub wet_bulb_c: f64,
    /// Fraction 0..1.
    pub free_cooling: f64,
    pub cop: f64,
    /// Server inlet temperature.
    pub inlet_c: f64,
    /// True when RH was missing.
    pub humidity_assumed: bool,
}

/// The wet-bulb to price with. Missing (or non-finite) RH: assume saturated air, the worst case
/// for a tower. Never above the dry-bulb, which Stull's 0.3 K error would allow near saturation.
fn wet_bulb_for_pricing(t_c: f64, rh_pct: Option<f64>) -> (f64, bool) {
    match rh_pct.filter(|rh| rh.is_finite()) {
        None => (t_c, true),
        Some(rh) => {
            let rh = rh.clamp(STULL_RH_RANGE.0, STULL_RH_RANGE.1);
            let t = t_c.clamp(STULL_T_RANGE.0, STULL_T_RANGE.1);
            (wet_bulb_stull(t, rh).min(t_c), false)
        }
    }
}

/// Water plant: tower water = Tw + 4 K, economizer = tower + 2 K, condenser = tower + 3 K.
/// Air-cooled: economizer = dry-bulb + 6 K, condenser = dry-bulb + 12 K.
/// RH `None` prices conservatively as saturated air (wet-bulb = dry-bulb) and sets
/// `humidity_assumed`. RH is clamped into 5..99 % and T into -20..50 C for the wet-bulb only.
pub fn cooling(plant: &CoolingPlant, t_c: f64, rh_pct: Option<f64>) -> Cooling {
    let (wet_bulb_c, humidity_assumed) = wet_bulb_for_pricing(t_c, rh_pct);
    let (economizer_c, condenser_c) = match plant.kind {
        CoolingKind::WaterEconomizer => {
            let tower_c = wet_bulb_c + TOWER_APPROACH_K;
            (
                tower_c + WATER_ECON_OVER_TOWER_K,
                tower_c + WATER_COND_OVER_TOWER_K,
            )
        }
        CoolingKind::AirCooled => (t_c + AIR_ECON_APPROACH_K, t_c + AIR_COND_APPROACH_K),
    };
    let free_cooling = free_cooling_fraction(plant, economizer_c);
    let cop = chiller_cop(plant, condenser_c);
    let pue = 1.0 + plant.overhead + (1.0 - free_cooling) / cop;
    // Assumption: above its design outdoor temperature the plant runs out of capacity and the
    // inlet rises 1 K per K of outdoor air.
    let inlet_c = plant.inlet_setpoint_c + (t_c - plant.design_outdoor_c).max(0.0);
    Cooling {
        pue,
        wet_bulb_c,
        free_cooling,
        cop,
        inlet_c,
        humidity_assumed,
    }
}

/// Top of ASHRAE's recommended inlet envelope.
const RECOMMENDED_MAX_INLET_C: f64 = 27.0;

/// Capacity fraction 0..=1. Assumption (DOMAIN.md): full up to 27 C inlet, falling linearly
/// to zero at the class's allowable maximum, as operators throttle to keep within warranty.
pub fn capacity_fraction(plant: &CoolingPlant, inlet_c: f64) -> f64 {
    // An unknown inlet offers no capacity rather than a NaN that would poison comparisons.
    if inlet_c.is_nan() {
        return 0.0;
    }
    let max_c = plant.ashrae_class.allowable_max_c();
    ((max_c - inlet_c) / (max_c - RECOMMENDED_MAX_INLET_C)).clamp(0.0, 1.0)
}

const W_PER_GB: f64 = 0.392;
/// Fans and leakage: servers draw about 0.4 % more per K of inlet above 23 C.
const INLET_UPLIFT_PER_K: f64 = 0.004;
const INLET_UPLIFT_FROM_C: f64 = 23.0;

/// IT watts per unit at this inlet.
pub fn it_watts_per_unit(power: &PowerProfile, inlet_c: f64) -> f64 {
    let base =
        power.w_min + power.utilisation * (power.w_max - power.w_min) + W_PER_GB * power.mem_gb;
    base * (1.0 + INLET_UPLIFT_PER_K * (inlet_c - INLET_UPLIFT_FROM_C).max(0.0))
}

/// USD per compute-hour: (W * PUE / 1000 [kWh] * usd_per_mwh / 1000 + non-energy) * (1 + margin).
/// A negative energy price lowers it, possibly below zero.
pub fn price_per_chr(
    it_w_per_unit: f64,
    pue: f64,
    usd_per_mwh: f64,
    non_energy_usd_per_chr: f64,
    margin: f64,
) -> f64 {
    let kwh_per_chr = it_w_per_unit * pue / 1000.0;
    let usd_per_kwh = usd_per_mwh / 1000.0;
    (kwh_per_chr * usd_per_kwh + non_energy_usd_per_chr) * (1.0 + margin)
}

/// Everything above in one call, for one node and one hour.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Quote {
    pub usd_per_chr: f64,
    pub pue: f64,
    pub capacity_fraction: f64,
    pub it_w_per_unit: f64,
    pub wet_bulb_c: f64,
    pub inlet_c: f64,
    pub humidity_assumed: bool,
}

/// Quote one node for one hour. Parameters are validated once when the config is loaded, not
/// here.
pub fn quote(
    plant: &CoolingPlant,
    power: &PowerProfile,
    non_energy_usd_per_chr: f64,
    margin: f64,
    t_c: f64,
    rh_pct: Option<f64>,
    usd_per_mwh: f64,
) -> Quote {
    let c = cooling(plant, t_c, rh_pct);
    let it_w_per_unit = it_watts_per_unit(power, c.inlet_c);
    Quote {
        usd_per_chr: price_per_chr(
            it_w_per_unit,
            c.pue,
            usd_per_mwh,
            non_energy_usd_per_chr,
            margin,
        ),
        pue: c.pue,
        capacity_fraction: capacity_fraction(plant, c.inlet_c),
        it_w_per_unit,
        wet_bulb_c: c.wet_bulb_c,
        inlet_c: c.inlet_c,
        humidity_assumed: c.humidity_assumed,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "{actual} is not within {tol} of {expected}"
        );
    }

    #[test]
    fn stull_matches_reference_20c_50pct() {
        // DOMAIN.md: (20 C, 50 %) -> 13.7 C; ±0.05 covers the reference's rounding.
        close(wet_bulb_stull(20.0, 50.0), 13.7, 0.05);
    }

    #[test]
    fn magnus_rh_matches_reference() {
        // DOMAIN.md: T 22.8 C, Td 18.3 C -> RH 75.77 %, ±0.05.
        close(rh_from_dew_point(22.8, 18.3), 75.77, 0.05);
    }

    #[test]
    fn magnus_dew_point_round_trips_rh() {
        for (t, rh) in [(22.8, 75.77), (-10.0, 40.0), (35.0, 60.0), (5.0, 99.0)] {
            let td = dew_point_magnus(t, rh);
            close(rh_from_dew_point(t, td), rh, 1e-9);
        }
        close(dew_point_magnus(22.8, 75.77), 18.3, 0.01);
    }

    #[test]
    fn chiller_cop_follows_carnot_and_clamps() {
        let plant = CoolingPlant::default();
        // T_evap = 16 C = 289.15 K; condenser 36 C: lift 20 K.
        close(chiller_cop(&plant, 36.0), 0.55 * 289.15 / 20.0, 1e-12);
        assert_eq!(chiller_cop(&plant, 10.0), 12.0);
        assert_eq!(chiller_cop(&plant, 16.5), 12.0);
        assert_eq!(chiller_cop(&plant, 200.0), 2.0);
    }

    #[test]
    fn water_plant_pue_cold_is_1_13() {
        // DOMAIN.md "about 1.13 in cold weather"; ±0.03.
        let c = cooling(&CoolingPlant::default(), 0.0, Some(60.0));
        close(c.pue, 1.13, 0.03);
        assert_eq!(c.free_cooling, 1.0);
    }

    #[test]
    fn water_plant_pue_hot_humid_is_1_23() {
        // DOMAIN.md "1.23 in hot humid weather"; ±0.03. 35 C 60 % gives Tw ~28.4 C, no free
        // cooling, COP ~8, PUE ~1.25.
        let c = cooling(&CoolingPlant::default(), 35.0, Some(60.0));
        close(c.pue, 1.23, 0.03);
        assert_eq!(c.free_cooling, 0.0);
        assert!(!c.humidity_assumed);
    }

    #[test]
    fn water_plant_pue_is_monotonic_in_temperature() {
        let plant = CoolingPlant::default();
        for rh in [5.0, 30.0, 60.0, 99.0] {
            let mut prev = f64::NEG_INFINITY;
            for i in -60..=120 {
                let t = f64::from(i) * 0.5;
                let pue = cooling(&plant, t, Some(rh)).pue;
                assert!(pue >= prev, "PUE fell at {t} C, {rh} %: {pue} < {prev}");
                prev = pue;
            }
        }
    }

    #[test]
    fn water_free_cooling_full_below_tw_12_none_above_18() {
        let plant = CoolingPlant::default();
        // Missing RH makes the wet-bulb equal the dry-bulb, so T sets Tw exactly.
        assert_eq!(cooling(&plant, 11.9, None).free_cooling, 1.0);
        assert_eq!(cooling(&plant, 12.0, None).free_cooling, 1.0);
        close(cooling(&plant, 15.0, None).free_cooling, 0.5, 1e-12);
        assert_eq!(cooling(&plant, 18.0, None).free_cooling, 0.0);
        assert_eq!(cooling(&plant, 18.1, None).free_cooling, 0.0);
        // With humidity: 20 C at 50 % is Tw 13.7: partial.
        let f = cooling(&plant, 20.0, Some(50.0)).free_cooling;
        assert!(f > 0.0 && f < 1.0, "{f}");
    }

    #[test]
    fn air_cooled_legacy_pue_at_35c_is_1_5_to_1_6() {
        let plant = CoolingPlant::air_cooled_legacy();
        plant.validate().unwrap();
        for rh in [None, Some(10.0), Some(60.0), Some(95.0)] {
            let pue = cooling(&plant, 35.0, rh).pue;
            assert!((1.5..=1.6).contains(&pue), "{pue} at {rh:?}");
        }
    }

    #[test]
    fn air_cooled_works_from_dry_bulb() {
        let plant = CoolingPlant::air_cooled_legacy();
        // Same dry-bulb, very different humidity: same PUE.
        close(
            cooling(&plant, 15.0, Some(10.0)).pue,
            cooling(&plant, 15.0, Some(95.0)).pue,
            1e-12,
        );
        assert_eq!(cooling(&plant, 12.0, Some(50.0)).free_cooling, 1.0);
        assert_eq!(cooling(&plant, 18.0, Some(50.0)).free_cooling, 0.0);
    }

    #[test]
    fn missing_humidity_prices_at_least_as_high_as_any_rh() {
        for plant in [CoolingPlant::default(), CoolingPlant::air_cooled_legacy()] {
            for i in -30..=55 {
                let t = f64::from(i);
                let assumed = cooling(&plant, t, None);
                assert!(assumed.humidity_assumed);
                assert_eq!(assumed.wet_bulb_c, t);
                for rh in [0.0, 5.0, 25.0, 50.0, 75.0, 99.0, 100.0] {
                    let known = cooling(&plant, t, Some(rh));
                    assert!(
                        assumed.pue >= known.pue,
                        "{t} C: {} < {} at {rh} %",
                        assumed.pue,
                        known.pue
                    );
                }
            }
        }
    }

    #[test]
    fn non_finite_rh_is_treated_as_missing() {
        let c = cooling(&CoolingPlant::default(), 30.0, Some(f64::NAN));
        assert!(c.humidity_assumed);
        assert!(c.pue.is_finite());
    }

    #[test]
    fn out_of_range_inputs_are_clamped_for_the_wet_bulb_only() {
        let plant = CoolingPlant::default();
        // RH 100 and 120 clamp to 99; T 60 clamps to 50 for the formula but sets the inlet.
        assert_eq!(
            cooling(&plant, 30.0, Some(120.0)).wet_bulb_c,
            cooling(&plant, 30.0, Some(99.0)).wet_bulb_c
        );
        let hot = cooling(&plant, 60.0, Some(50.0));
        assert_eq!(hot.wet_bulb_c, wet_bulb_stull(50.0, 50.0));
        close(hot.inlet_c, 24.0 + 25.0, 1e-12);
        let cold = cooling(&plant, -40.0, Some(50.0));
        assert!(cold.wet_bulb_c <= -40.0 && cold.pue.is_finite());
    }

    /// Published range (DOMAIN.md): 1.05 at -3.9 C up to 1.30 at 35 C. The water plant stays
    /// inside it: 1.13 cold (its 0.13 fixed overhead sits above the 1.05 floor, which counts
    /// cooling alone) and at most ~1.29 at 35 C even at saturation. The legacy air plant is
    /// above the range at 35 C, as a legacy plant should be, and 1.32 when free cooling.
    #[test]
    fn plants_against_published_sanity_range() {
        let water = CoolingPlant::default();
        let air = CoolingPlant::air_cooled_legacy();
        for rh in [None, Some(5.0), Some(50.0), Some(99.0)] {
            for t in [-3.9, 0.0, 10.0, 20.0, 30.0, 35.0] {
                let pue = cooling(&water, t, rh).pue;
                assert!((1.05..=1.30).contains(&pue), "water {pue} at {t} C {rh:?}");
            }
            close(cooling(&water, -3.9, rh).pue, 1.13, 1e-12);
            close(cooling(&air, -3.9, rh).pue, 1.32, 1e-12);
            assert!(cooling(&air, 35.0, rh).pue > 1.30);
        }
    }

    #[test]
    fn ashrae_allowable_maxima() {
        let got: Vec<f64> = [
            AshraeClass::A1,
            AshraeClass::A2,
            AshraeClass::A3,
            AshraeClass::A4,
        ]
        .into_iter()
        .map(AshraeClass::allowable_max_c)
        .collect();
        assert_eq!(got, vec![32.0, 35.0, 40.0, 45.0]);
    }

    #[test]
    fn capacity_fraction_derates_from_27c_to_allowable_max() {
        let plant = CoolingPlant::default(); // A2
        assert_eq!(capacity_fraction(&plant, 20.0), 1.0);
        assert_eq!(capacity_fraction(&plant, 27.0), 1.0);
        close(capacity_fraction(&plant, 31.0), 0.5, 1e-12);
        assert_eq!(capacity_fraction(&plant, 35.0), 0.0);
        assert_eq!(capacity_fraction(&plant, 40.0), 0.0);
        assert_eq!(capacity_fraction(&plant, f64::NAN), 0.0);
        let a4 = CoolingPlant {
            ashrae_class: AshraeClass::A4,
            ..CoolingPlant::default()
        };
        close(capacity_fraction(&a4, 36.0), 0.5, 1e-12);
    }

    #[test]
    fn capacity_derates_only_above_design_outdoor_temperature() {
        let plant = CoolingPlant::default(); // setpoint 24 C, design 35 C
        let q = |t| {
            quote(
                &plant,
                &PowerProfile::default(),
                0.01,
                0.0,
                t,
                Some(40.0),
                50.0,
            )
        };
        for t in [-10.0, 20.0, 30.0, 35.0] {
            assert_eq!(q(t).inlet_c, 24.0);
            assert_eq!(q(t).capacity_fraction, 1.0);
        }
        // 42 C outdoor: inlet 31 C, half capacity under A2.
        close(q(42.0).inlet_c, 31.0, 1e-12);
        close(q(42.0).capacity_fraction, 0.5, 1e-12);
        assert_eq!(q(46.0).capacity_fraction, 0.0);
    }

    #[test]
    fn it_watts_follow_linear_model_and_inlet_uplift() {
        let p = PowerProfile::default();
        let base = 0.74 + 0.5 * (3.5 - 0.74) + 0.392 * 2.0; // 2.904 W
        close(it_watts_per_unit(&p, 18.0), base, 1e-12);
        close(it_watts_per_unit(&p, 23.0), base, 1e-12);
        close(it_watts_per_unit(&p, 28.0), base * 1.02, 1e-12);
        let idle = PowerProfile {
            utilisation: 0.0,
            mem_gb: 0.0,
            ..p
        };
        close(it_watts_per_unit(&idle, 20.0), 0.74, 1e-12);
    }

    #[test]
    fn vcpu_hour_takes_about_4_4_wh_at_pue_1_2() {
        // DOMAIN.md's 4.4 Wh matches 4 GB per vCPU (general-purpose ratio): 3.688 W x 1.2 =
        // 4.43 Wh. The 2 GB default (compute-optimised) gives 3.48 Wh.
        let general = PowerProfile {
            mem_gb: 4.0,
            ..PowerProfile::default()
        };
        close(it_watts_per_unit(&general, 23.0) * 1.2, 4.4, 0.05);
        close(
            it_watts_per_unit(&PowerProfile::default(), 23.0) * 1.2,
            3.485,
            0.001,
        );
    }

    #[test]
    fn price_per_chr_by_hand() {
        // 3.688 W x 1.2 = 4.4256 Wh = 0.0044256 kWh; at 80 USD/MWh = 0.08 USD/kWh:
        // 0.000354048 USD; + 0.01 non-energy = 0.010354048; x 1.2 margin = 0.0124248576.
        close(
            price_per_chr(3.688, 1.2, 80.0, 0.01, 0.2),
            0.012_424_857_6,
            1e-12,
        );
    }

    #[test]
    fn negative_energy_price_lowers_the_price() {
        let normal = price_per_chr(3.688, 1.2, 40.0, 0.01, 0.1);
        let free = price_per_chr(3.688, 1.2, 0.0, 0.01, 0.1);
        let negative = price_per_chr(3.688, 1.2, -50.0, 0.01, 0.1);
        assert!(negative < free && free < normal);
        close(free, 0.011, 1e-15);
    }

    #[test]
    fn price_spike_dominates_non_energy_cost() {
        let non_energy = 0.01;
        // Normal price: energy is a small share (under 5 %).
        let normal = price_per_chr(3.688, 1.2, 50.0, non_energy, 0.0);
        assert!(normal - non_energy < 0.05 * normal);
        // ERCOT-cap spike: energy (0.0221 USD) exceeds the non-energy cost.
        let spike = price_per_chr(3.688, 1.2, 5_000.0, non_energy, 0.0);
        assert!(spike - non_energy > non_energy);
        close(spike - non_energy, 0.0044256 * 5.0, 1e-12);
    }

    #[test]
    fn quote_combines_the_pieces() {
        let plant = CoolingPlant::default();
        let power = PowerProfile::default();
        let q = quote(&plant, &power, 0.01, 0.2, 35.0, Some(60.0), 120.0);
        let c = cooling(&plant, 35.0, Some(60.0));
        let w = it_watts_per_unit(&power, c.inlet_c);
        assert_eq!(q.pue, c.pue);
        assert_eq!(q.it_w_per_unit, w);
        assert_eq!(q.usd_per_chr, price_per_chr(w, c.pue, 120.0, 0.01, 0.2));
        assert_eq!(q.capacity_fraction, 1.0);
        assert_eq!(q.wet_bulb_c, c.wet_bulb_c);
        assert!(!q.humidity_assumed);
        assert!(quote(&plant, &power, 0.01, 0.2, 35.0, None, 120.0).humidity_assumed);
    }

    #[test]
    fn defaults_validate() {
        CoolingPlant::default().validate().unwrap();
        CoolingPlant::air_cooled_legacy().validate().unwrap();
        PowerProfile::default().validate().unwrap();
    }

    #[test]
    fn validate_rejects_out_of_range_naming_the_field() {
        let bad_plants = [
            (
                "eta",
                CoolingPlant {
                    eta: 0.95,
                    ..CoolingPlant::default()
                },
            ),
            (
                "eta",
                CoolingPlant {
                    eta: f64::NAN,
                    ..CoolingPlant::default()
                },
            ),
            (
                "chw_supply_c",
                CoolingPlant {
                    chw_supply_c: f64::INFINITY,
                    ..CoolingPlant::default()
                },
            ),
            (
                "chw_return_c",
                CoolingPlant {
                    chw_return_c: 18.0,
                    ..CoolingPlant::default()
                },
            ),
            (
                "overhead",
                CoolingPlant {
                    overhead: -0.1,
                    ..CoolingPlant::default()
                },
            ),
            (
                "inlet_setpoint_c",
                CoolingPlant {
                    ashrae_class: AshraeClass::A1,
                    inlet_setpoint_c: 33.0,
                    ..CoolingPlant::default()
                },
            ),
            (
                "design_outdoor_c",
                CoolingPlant {
                    design_outdoor_c: f64::NAN,
                    ..CoolingPlant::default()
                },
            ),
        ];
        for (field, plant) in bad_plants {
            let err = plant.validate().unwrap_err();
            assert_eq!(err.field, field);
        }

        let bad_power = [
            (
                "w_min",
                PowerProfile {
                    w_min: -1.0,
                    ..PowerProfile::default()
                },
            ),
            (
                "w_max",
                PowerProfile {
                    w_max: 0.5,
                    ..PowerProfile::default()
                },
            ),
            (
                "utilisation",
                PowerProfile {
                    utilisation: 1.5,
                    ..PowerProfile::default()
                },
            ),
            (
                "mem_gb",
                PowerProfile {
                    mem_gb: f64::NAN,
                    ..PowerProfile::default()
                },
            ),
        ];
        for (field, power) in bad_power {
            assert_eq!(power.validate().unwrap_err().field, field);
        }

        let err = PowerProfile {
            utilisation: 1.5,
            ..PowerProfile::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(err.to_string(), "utilisation = 1.5: expected 0..=1");
    }

    #[test]
    fn plant_config_deserialises_with_defaults_and_rejects_unknown_fields() {
        let plant: CoolingPlant =
            serde_json::from_str(r#"{"kind":"air-cooled","eta":0.45,"ashrae_class":"A3"}"#)
                .unwrap();
        assert_eq!(plant.kind, CoolingKind::AirCooled);
        assert_eq!(plant.ashrae_class, AshraeClass::A3);
        assert_eq!(plant.chw_supply_c, 18.0);
        assert!(serde_json::from_str::<CoolingPlant>(r#"{"etaa":0.5}"#).is_err());
        assert!(serde_json::from_str::<PowerProfile>(r#"{"mem":2}"#).is_err());
        let power: PowerProfile = serde_json::from_str(r#"{"mem_gb":4}"#).unwrap();
        assert_eq!(power.mem_gb, 4.0);
        assert_eq!(power.w_max, 3.5);
    }
}
