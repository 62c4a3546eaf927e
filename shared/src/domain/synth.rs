//! Deterministic synthetic signal streams (weather, energy prices and their forecasts) for the
//! local demo mode and tests.
//!
//! Every value is a pure function of `(seed, key, profile, hour[, issued_hour])`: noise comes from
//! a splitmix64-style hash of `(seed, key, stream tag, index)`, and smooth noise interpolates
//! hashed knots. Nothing is sequential, so results do not depend on which hours are asked, in which
//! order, or for how many nodes. `hour` is whole hours since the Unix epoch (UTC).
//!
//! Calibration: market profiles against the open EPF benchmark day-ahead prices (PJM, DE, FR, NP,
//! BE, two years each), weather shapes against the Greensboro NC and Sand Point AK TMY3 files.
//! Texas (ERCOT) is not in that data: its numbers are documented assumptions.

use serde::{Deserialize, Serialize};
use std::f64::consts::{PI, TAU};

// ---------------------------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------------------------

/// Climate of one site: the knobs of the synthetic weather.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Climate {
    pub annual_mean_c: f64,
    /// Half the summer-winter difference; the sign is handled by the hemisphere (`lat`).
    pub seasonal_amp_c: f64,
    /// Half the day-night difference of the mean daily cycle.
    pub diurnal_amp_c: f64,
    pub mean_rh_pct: f64,
    /// Std-dev of multi-day (front) anomalies of the daily mean temperature.
    pub front_sd_c: f64,
    pub lat: f64,
    /// Used for local solar time: the temperature peaks about 15:00 local solar time.
    pub lon: f64,
}

impl Climate {
    /// Plausible defaults from latitude/longitude, continental mid-latitude style.
    ///
    /// - annual mean: 27 C up to 15 deg latitude, then -0.55 K per degree (Greensboro NC, 36.1 N:
    ///   15.4 vs 14.4 in its TMY3; Sand Point AK, 55.3 N: 4.8 vs 4.4);
    /// - seasonal amplitude: 1 K in the tropics, +0.3 K per degree beyond 10 deg, at most 20 K
    ///   (Greensboro 8.8 vs 11.4). No land/sea mask here: maritime sites (Sand Point: 5.7) should
    ///   override it;
    /// - diurnal amplitude 5 K at the equator, -0.02 K per degree (Greensboro 4.3 vs 4.4);
    /// - front std-dev 1 K + 0.09 K per degree, storm tracks being mid/high-latitude (Greensboro
    ///   4.2 vs 4.4);
    /// - mean RH 70 % (Greensboro 69.5 %, Sand Point 73.5 %).
    pub fn for_location(lat: f64, lon: f64) -> Self {
        let a = lat.abs().min(90.0);
        Self {
            annual_mean_c: 27.0 - 0.55 * (a - 15.0).max(0.0),
            seasonal_amp_c: (1.0 + 0.3 * (a - 10.0).max(0.0)).min(20.0),
            diurnal_amp_c: 5.0 - 0.02 * a,
            mean_rh_pct: 70.0,
            front_sd_c: 1.0 + 0.09 * a,
            lat,
            lon,
        }
    }
}

/// Shape of one electricity market's hourly prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarketProfile {
    pub base_usd_per_mwh: f64,
    /// Peak-to-trough of the daily shape as a fraction of base.
    pub daily_swing: f64,
    /// Midday dip (13:00 local, on an average day) below the daily shape, as a fraction of base;
    /// the rest of the day is raised a little so the mean stays at base. It scales a renewable
    /// surplus that varies by day (and also lowers whole windy days): on cheap, sunny, windy
    /// days it pushes prices negative, mostly at midday.
    pub solar_dip: f64,
    /// Std-dev of the smooth multiplicative noise (monthly, multi-day and intra-day parts).
    pub volatility: f64,
    /// Per hour (averaged over the day; peak hours are likelier).
    pub spike_prob: f64,
    pub spike_cap_usd_per_mwh: f64,
    /// The lowest the price goes, e.g. -100.
    pub negative_floor_usd_per_mwh: f64,
    /// Market's local time offset for the daily and weekly shapes.
    pub utc_offset_h: i32,
    /// Relative std-dev of the day-ahead forecast error at 24 h lead.
    pub forecast_error: f64,
}

impl MarketProfile {
    /// US east, calibrated on dayahead_PJM (2016-12..2018-12, USD).
    pub fn pjm_like() -> Self {
        Self {
            base_usd_per_mwh: 27.8,             // PJM mean 27.83
            daily_swing: 0.71,                  // PJM hourly-mean profile fitted to DAILY_SHAPE
            solar_dip: 0.0,                     // PJM midday is a plateau, no dip
            volatility: 0.31,                   // PJM sd of price / (weekday, hour) profile
            spike_prob: 1e-4, // PJM DA never passed 0.2 * cap; ~1 RT-like spike a year
            spike_cap_usd_per_mwh: 1000.0, // PJM energy offer cap
            negative_floor_usd_per_mwh: -100.0, // PJM DA min was -3.6; floor is a guard
            utc_offset_h: -5,
            forecast_error: 0.13, // PJM DNN ensemble MAE 10.3 % of mean, x sqrt(pi/2)
        }
    }

    /// Germany, calibrated on dayahead_DE (2016..2017, EUR ~ USD); has negative hours.
    pub fn germany_like() -> Self {
        Self {
            base_usd_per_mwh: 31.6,             // DE mean 31.64
            daily_swing: 0.65,                  // DE profile fit with the solar bell
            solar_dip: 0.11,  // DE profile fit: 0.144 on the raw bell = 0.106 of base
            volatility: 0.36, // with the renewable term: DE sd 15.5, p05 0.32 of mean
            spike_prob: 1e-4, // DE DA never passed 600 (0.2 * cap)
            spike_cap_usd_per_mwh: 3000.0, // EU day-ahead harmonised max price then
            negative_floor_usd_per_mwh: -500.0, // EU day-ahead harmonised min price
            utc_offset_h: 1,
            forecast_error: 0.135, // DE DNN MAE 10.8 % of mean, x sqrt(pi/2)
        }
    }

    /// Nord Pool system price, calibrated on dayahead_NP (2016-12..2018-12): cheap, flat, hydro.
    pub fn nordic_like() -> Self {
        Self {
            base_usd_per_mwh: 36.5,             // NP mean 36.51
            daily_swing: 0.24,                  // NP profile fit
            solar_dip: 0.0,                     // NP fit gives none
            volatility: 0.28,                   // NP sd of price / (weekday, hour) profile
            spike_prob: 5e-5,                   // NP max 198, never near 0.2 * cap
            spike_cap_usd_per_mwh: 3000.0,      // Nord Pool max price
            negative_floor_usd_per_mwh: -500.0, // Nord Pool min price
            utc_offset_h: 1,
            forecast_error: 0.058, // NP DNN MAE 4.6 % of mean, x sqrt(pi/2)
        }
    }

    /// France, calibrated on dayahead_FR (2015..2016, nuclear; the file spans those years).
    pub fn france_like() -> Self {
        Self {
            base_usd_per_mwh: 37.6,             // FR mean 37.59
            daily_swing: 0.62,                  // FR profile fit with the solar bell
            solar_dip: 0.03, // FR profile fit 0.077, cut so negatives stay as rare as FR's
            volatility: 0.40, // FR sd of price / (weekday, hour) profile
            spike_prob: 1.7e-4, // FR: 3 of 17,472 hours above 600 (0.2 * cap)
            spike_cap_usd_per_mwh: 3000.0, // EU day-ahead harmonised max price then
            negative_floor_usd_per_mwh: -500.0, // EU day-ahead harmonised min price
            utc_offset_h: 1,
            forecast_error: 0.13, // FR DNN MAE 10.3 % of mean, x sqrt(pi/2)
        }
    }

    /// ERCOT-like: spiky, cap 5,000 USD/MWh, hot afternoons. Not in the calibration data: these
    /// are assumptions of the right order for ERCOT 2017-2019.
    pub fn texas_like() -> Self {
        Self {
            base_usd_per_mwh: 35.0, // ERCOT hub averages were roughly 25..45 in 2017-2019
            daily_swing: 0.8,       // assumption: afternoon air-conditioning peak, above PJM
            solar_dip: 0.05,        // assumption: west Texas solar, small then
            volatility: 0.45,       // assumption: between PJM and DE
            spike_prob: 0.002,      // assumption: ~15-20 hours a year above 1,000
            spike_cap_usd_per_mwh: 5000.0, // ERCOT high system-wide offer cap since 2022
            negative_floor_usd_per_mwh: -250.0, // ERCOT offer floor
            utc_offset_h: -6,
            forecast_error: 0.2, // assumption: harder to forecast than PJM/DE
        }
    }

    /// Profile by name: "pjm", "germany", "nordic", "france", "texas" (ASCII case-insensitive).
    pub fn by_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "pjm" => Some(Self::pjm_like()),
            "germany" => Some(Self::germany_like()),
            "nordic" => Some(Self::nordic_like()),
            "france" => Some(Self::france_like()),
            "texas" => Some(Self::texas_like()),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Public functions
// ---------------------------------------------------------------------------------------------

/// Actual hourly weather at `hour`: (dry-bulb C, relative humidity %, RH within 5..=100).
pub fn weather_actual(seed: u64, key: u64, c: &Climate, hour: i64) -> (f64, f64) {
    let s = weather_state(seed, key, c, hour);
    (s.temp_c, rh_from_dew(s.temp_c, s.dew_c))
}

/// Forecast of `target_hour` as issued at `issued_hour` (<= target). Equals actual when lead is
/// 0 (or negative: a "forecast" of the past is the observation); the error std-dev grows with
/// lead (about 1 K at 24 h, 2.5 K at 72 h) and is unbiased in temperature.
pub fn weather_forecast(
    seed: u64,
    key: u64,
    c: &Climate,
    target_hour: i64,
    issued_hour: i64,
) -> (f64, f64) {
    let lead = target_hour.saturating_sub(issued_hour);
    if lead <= 0 {
        return weather_actual(seed, key, c, target_hour);
    }
    let s = weather_state(seed, key, c, target_hour);
    let sd = WEATHER_FC_SD_24H_C * lead_growth(lead);
    let t = s.temp_c + sd * smooth2(seed, key, TAG_T_FC, issued_hour, target_hour);
    let d = s.dew_c + sd * smooth2(seed, key, TAG_DEW_FC, issued_hour, target_hour);
    (t, rh_from_dew(t, d))
}

/// Actual hourly price USD/MWh at `hour` (never below negative_floor, never above spike_cap).
pub fn price_actual(seed: u64, key: u64, m: &MarketProfile, hour: i64) -> f64 {
    let p = price_parts(seed, key, m, hour);
    bound(p.spike.unwrap_or(p.smooth), m)
}

/// Day-ahead style forecast of `target_hour` issued at `issued_hour`: the actual's smooth part
/// plus an unbiased error growing with lead (relative std-dev ~`forecast_error` at 24 h); only a
/// minority of spikes are foreseen. Equals actual at lead 0 (and for issued after target).
pub fn price_forecast(
    seed: u64,
    key: u64,
    m: &MarketProfile,
    target_hour: i64,
    issued_hour: i64,
) -> f64 {
    let lead = target_hour.saturating_sub(issued_hour);
    if lead <= 0 {
        return price_actual(seed, key, m, target_hour);
    }
    let p = price_parts(seed, key, m, target_hour);
    let sd = m.forecast_error * lead_growth(lead);
    // Error proportional to the price level, as in the data (bigger errors at dear hours).
    let err = sd * p.level.abs() * smooth2(seed, key, TAG_PRICE_FC, issued_hour, target_hour);
    let foreseen = uniform(hash(seed, key, TAG_SPIKE_SEEN, target_hour)) < SPIKE_FORESEEN_SHARE;
    let centre = match p.spike {
        Some(spike) if foreseen => spike,
        _ => p.smooth,
    };
    bound(centre + err, m)
}

/// Stable 64-bit key for a name (e.g. a node id): FNV-1a over the UTF-8 bytes, the same on
/// every run and platform.
pub fn key_of(name: &str) -> u64 {
    name.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

// ---------------------------------------------------------------------------------------------
// Calibration constants
// ---------------------------------------------------------------------------------------------

// Weather.
/// Warmest day of the year (0 = Jan 1): Greensboro TMY3 fit 195, Sand Point 208.
const WARMEST_DOY: f64 = 201.0;
const DAYS_PER_YEAR: f64 = 365.2425;
/// Diurnal shape, first harmonic (amplitude, peak hour): Greensboro TMY3 mean daily cycle,
/// phase shifted 0.87 h so the peak is at 15:00 local solar time; half range 1.
const DIURNAL_H1: (f64, f64) = (0.941, 15.775);
/// Second harmonic (amplitude, peak hour mod 12): same fit; makes the minimum ~05:30.
const DIURNAL_H2: (f64, f64) = (0.212, 2.123);
/// Day-to-day relative std-dev of the diurnal amplitude (cloudy vs clear days): assumption.
const DIURNAL_DAY_SD: f64 = 0.25;
/// Intra-day anomaly sd as a share of front_sd: Greensboro 2.24/4.36, Sand Point 1.07/3.27.
const FAST_ANOMALY_SHARE: f64 = 0.4;
/// Fronts: knots every 72 h give day-to-day autocorrelation ~0.75 at 1 d and ~0.3 at 3 d
/// (Greensboro 0.73 / 0.25, Sand Point 0.82 / 0.48).
const FRONT_KNOT_H: i64 = 72;
const FAST_KNOT_H: i64 = 6;
/// Std-dev of the daily-mean RH: Greensboro TMY3 15 % including seasons, cut for clamping.
const RH_DAY_SD_PCT: f64 = 12.0;
const RH_KNOT_H: i64 = 48;
/// Temperature forecast error std-dev at 24 h lead (the brief: ~1 K at 24 h, 2.5 K at 72 h).
const WEATHER_FC_SD_24H_C: f64 = 1.0;
/// Lead growth exponent: (72/24)^p = 2.5 gives p = ln 2.5 / ln 3.
const LEAD_GROWTH_EXP: f64 = 0.834;
/// Beyond ~10 days forecasts are no better than climatology: stop the growth there.
const LEAD_CAP_H: i64 = 240;
/// Knot spacing of the forecast error field, in both issued and target hour.
const FC_KNOT_H: i64 = 6;

// Prices.
/// Mean daily shape by local hour, zero mean, peak-to-trough 1: average of the normalised
/// hourly-mean profiles of dayahead_BE, FR, NP and PJM (DE left out for its solar dip).
const DAILY_SHAPE: [f64; 24] = [
    -0.276, -0.403, -0.476, -0.548, -0.561, -0.443, -0.184, 0.126, 0.250, 0.273, 0.249, 0.225,
    0.167, 0.117, 0.081, 0.059, 0.106, 0.270, 0.439, 0.368, 0.229, 0.073, -0.003, -0.141,
];
/// Solar bell by local hour: Gaussian at 13:00, sd 2.5 h, made zero-mean, peak 1.
const SOLAR_BELL: [f64; 24] = [
    -0.3534, -0.3534, -0.3533, -0.3529, -0.3513, -0.3453, -0.3265, -0.2774, -0.1702, 0.0229,
    0.3054, 0.6294, 0.8959, 1.0000, 0.8959, 0.6294, 0.3054, 0.0229, -0.1702, -0.2774, -0.3265,
    -0.3453, -0.3513, -0.3529,
];
/// Mean price by weekday (Mon..Sun) over the week's mean: average of the five EPF markets.
const WEEKLY_SHAPE: [f64; 7] = [1.044, 1.086, 1.073, 1.073, 1.050, 0.889, 0.784];
/// Daily swing at which the weekly shape is at full depth; flatter markets are flatter weekly
/// too (NP: swing 0.24, Sunday 0.92 of mean; the full-depth average Sunday is 0.78).
const WEEKLY_FULL_SWING: f64 = 0.5;
/// Variance shares of the multiplicative noise: monthly / multi-day / intra-day, averaged from
/// the month, day-in-month and hour-in-day decomposition of the five EPF markets.
const NOISE_SHARES: [f64; 3] = [0.3, 0.35, 0.35];
/// Knot spacings matching those parts (day-mean autocorrelation ~0.5-0.65 at 1 d, intra-day
/// autocorrelation ~0.3 at 3 h and negative by 6 h in the data). Two-week slow knots still
/// give monthly means the data's spread and keep a year's mean within a few % of base.
const NOISE_KNOTS_H: [i64; 3] = [336, 48, 6];
/// Seasonal amplitude of the solar dip (northern-hemisphere markets): assumption.
const SOLAR_SEASON_AMP: f64 = 0.6;
/// Day of year of the longest day (northern hemisphere).
const SOLSTICE_DOY: f64 = 171.0;
/// Log-std-dev of day-to-day renewable output: tuned so germany_like has DE's 1.4 % negatives
/// (and DE's minimum, -130, in reach).
const RENEWABLE_SIGMA: f64 = 1.2;
/// Whole-day (wind) part of the renewable surplus relative to the midday solar part: tuned
/// with RENEWABLE_SIGMA so germany_like has DE's share of negative hours.
const WIND_SHARE: f64 = 1.0;
/// Correlation of renewable output with cheap days: windy sunny days are the cheap ones.
const RENEWABLE_CHEAP_CORR: f64 = 0.6;
/// Spikes reach at least this fraction of the way from the price to the cap.
const SPIKE_MIN_FRAC: f64 = 0.2;
/// Spike likelihood by hour follows the daily shape with this gain (peak hours likelier).
const SPIKE_SHAPE_GAIN: f64 = 1.5;
/// Share of spikes a day-ahead forecast sees: BE/FR/NP DNN forecasts recovered ~20-35 % of the
/// excess at hours above 3x the median; modelled as one spike in five foreseen.
const SPIKE_FORESEEN_SHARE: f64 = 0.2;

// Hashing.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

// Stream tags: each independent noise stream gets its own.
const TAG_FRONT: u64 = 1;
const TAG_FAST: u64 = 2;
const TAG_DIURNAL: u64 = 3;
const TAG_RH: u64 = 4;
const TAG_T_FC: u64 = 5;
const TAG_DEW_FC: u64 = 6;
const TAG_PRICE_NOISE: [u64; 3] = [10, 11, 12];
const TAG_RENEWABLE: u64 = 13;
const TAG_SPIKE: u64 = 14;
const TAG_SPIKE_SIZE: u64 = 15;
const TAG_SPIKE_SEEN: u64 = 16;
const TAG_PRICE_FC: u64 = 17;

// ---------------------------------------------------------------------------------------------
// Weather internals
// ---------------------------------------------------------------------------------------------

struct WeatherState {
    temp_c: f64,
    dew_c: f64,
}

fn weather_state(seed: u64, key: u64, c: &Climate, hour: i64) -> WeatherState {
    let hemisphere = if c.lat < 0.0 { -1.0 } else { 1.0 };
    let seasonal = hemisphere
        * c.seasonal_amp_c
        * (TAU * (day_of_year(hour) - WARMEST_DOY) / DAYS_PER_YEAR).cos();
    let fronts = c.front_sd_c
        * (smooth(seed, key, TAG_FRONT, hour, FRONT_KNOT_H)
            + FAST_ANOMALY_SHARE * smooth(seed, key, TAG_FAST, hour, FAST_KNOT_H));
    let base = c.annual_mean_c + seasonal + fronts;

    let solar_h = (hour.rem_euclid(24) as f64 + c.lon / 15.0).rem_euclid(24.0);
    let amp = c.diurnal_amp_c
        * (1.0 + DIURNAL_DAY_SD * smooth(seed, key, TAG_DIURNAL, hour, 24)).max(0.0);
    let temp_c = base + amp * diurnal_shape(solar_h);

    // Dew point follows the day's air mass, not the hour: RH then falls in the afternoon and
    // rises at night by itself, as in the TMY3 data (Greensboro 84 % at 06, 53 % at 15).
    // Set at the daily-mean temperature; the all-hours mean then lands within ~1.5 % of
    // mean_rh_pct for RH 40..70 and diurnal amplitudes 0..8 K (checked on synthetic years).
    let rh_at_base = (c.mean_rh_pct + RH_DAY_SD_PCT * smooth(seed, key, TAG_RH, hour, RH_KNOT_H))
        .clamp(5.0, 100.0);
    WeatherState {
        temp_c,
        dew_c: dew_from_rh(base, rh_at_base),
    }
}

/// Mean daily cycle, half range 1, peak at 15:00 local solar time.
fn diurnal_shape(solar_h: f64) -> f64 {
    let w = TAU / 24.0;
    DIURNAL_H1.0 * (w * (solar_h - DIURNAL_H1.1)).cos()
        + DIURNAL_H2.0 * (2.0 * w * (solar_h - DIURNAL_H2.1)).cos()
}

// Magnus form (DOMAIN.md): a = 17.625, b = 243.04.
const MAGNUS_A: f64 = 17.625;
const MAGNUS_B: f64 = 243.04;

/// Keeps Magnus away from its pole at -243 C for any climate input.
fn magnus_t(t: f64) -> f64 {
    t.clamp(-80.0, 60.0)
}

fn dew_from_rh(t: f64, rh: f64) -> f64 {
    let t = magnus_t(t);
    let g = (rh / 100.0).ln() + MAGNUS_A * t / (MAGNUS_B + t);
    MAGNUS_B * g / (MAGNUS_A - g)
}

fn rh_from_dew(t: f64, td: f64) -> f64 {
    let (t, td) = (magnus_t(t), magnus_t(td));
    let rh = 100.0 * (MAGNUS_A * td / (MAGNUS_B + td) - MAGNUS_A * t / (MAGNUS_B + t)).exp();
    rh.clamp(5.0, 100.0)
}

// ---------------------------------------------------------------------------------------------
// Price internals
// ---------------------------------------------------------------------------------------------

struct PriceParts {
    /// Price without spikes, before the floor/cap.
    smooth: f64,
    /// Positive-ish demand level (base x shapes x noise): the scale of forecast errors.
    level: f64,
    /// The spike price when this hour spikes.
    spike: Option<f64>,
}

fn price_parts(seed: u64, key: u64, m: &MarketProfile, hour: i64) -> PriceParts {
    let local = hour.saturating_add(i64::from(m.utc_offset_h));
    let lh = local.rem_euclid(24) as usize;
    let day = local.div_euclid(24);
    // 1970-01-01 was a Thursday; index 0 is Monday.
    let dow = (day + 3).rem_euclid(7) as usize;

    let daily = 1.0 + m.daily_swing * DAILY_SHAPE[lh];
    let depth = (m.daily_swing.abs() / WEEKLY_FULL_SWING).min(1.0);
    let weekly = 1.0 + depth * (WEEKLY_SHAPE[dow] - 1.0);

    // Lognormal multiplicative noise with mean 1 and std-dev `volatility`.
    let sigma2 = (1.0 + m.volatility * m.volatility).ln();
    let mut log_noise = -0.5 * sigma2;
    let mut day_part = 0.0;
    for i in 0..3 {
        let z = smooth(seed, key, TAG_PRICE_NOISE[i], hour, NOISE_KNOTS_H[i]);
        if i == 1 {
            day_part = z;
        }
        log_noise += (sigma2 * NOISE_SHARES[i]).sqrt() * z;
    }
    let level = m.base_usd_per_mwh * daily * weekly * log_noise.exp();

    // Renewable output of the day: lognormal, mean 1, high on cheap (low day_part) days.
    let own = smooth(seed, key, TAG_RENEWABLE, local, 24);
    let zr = -RENEWABLE_CHEAP_CORR * day_part
        + (1.0 - RENEWABLE_CHEAP_CORR * RENEWABLE_CHEAP_CORR).sqrt() * own;
    let renewable = (RENEWABLE_SIGMA * zr - 0.5 * RENEWABLE_SIGMA * RENEWABLE_SIGMA).exp();
    let season =
        1.0 + SOLAR_SEASON_AMP * (TAU * (day_of_year(local) - SOLSTICE_DOY) / DAYS_PER_YEAR).cos();
    // The surplus also lowers whole windy days; (renewable - 1) keeps that part zero-mean.
    let dip = m.base_usd_per_mwh
        * m.solar_dip
        * (SOLAR_BELL[lh] * season * renewable + WIND_SHARE * (renewable - 1.0));
    let smooth_price = level - dip;

    let p_spike = m.spike_prob * (1.0 + SPIKE_SHAPE_GAIN * DAILY_SHAPE[lh]);
    let spike = (uniform(hash(seed, key, TAG_SPIKE, hour)) < p_spike).then(|| {
        let from = bound(smooth_price, m);
        let v = uniform(hash(seed, key, TAG_SPIKE_SIZE, hour));
        // Cubed so most spikes are modest and a few reach the cap.
        from + (m.spike_cap_usd_per_mwh - from)
            * (SPIKE_MIN_FRAC + (1.0 - SPIKE_MIN_FRAC) * v * v * v)
    });
    PriceParts {
        smooth: smooth_price,
        level,
        spike,
    }
}

/// Floor/cap without `f64::clamp`, which panics on an inverted (misconfigured) range.
fn bound(p: f64, m: &MarketProfile) -> f64 {
    p.max(m.negative_floor_usd_per_mwh)
        .min(m.spike_cap_usd_per_mwh)
}

// ---------------------------------------------------------------------------------------------
// Shared internals: time, lead growth, hashing, noise
// ---------------------------------------------------------------------------------------------

/// Days since Jan 1 of the current year (the epoch is a Jan 1; drift is under a day a century).
fn day_of_year(hour: i64) -> f64 {
    (hour as f64 / 24.0).rem_euclid(DAYS_PER_YEAR)
}

/// Forecast error std-dev relative to its 24 h value.
fn lead_growth(lead: i64) -> f64 {
    (lead.clamp(0, LEAD_CAP_H) as f64 / 24.0).powf(LEAD_GROWTH_EXP)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hash(seed: u64, key: u64, tag: u64, idx: i64) -> u64 {
    let h = splitmix(seed);
    let h = splitmix(h ^ key);
    let h = splitmix(h ^ tag.wrapping_mul(GOLDEN));
    splitmix(h ^ idx as u64)
}

fn hash2(seed: u64, key: u64, tag: u64, a: i64, b: i64) -> u64 {
    splitmix(hash(seed, key, tag, a) ^ (b as u64).wrapping_mul(0xd6e8_feb8_6659_fd93))
}

/// Uniform in (0, 1) from the top 53 bits.
fn uniform(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Standard normal by Box-Muller from the two 32-bit halves.
fn normal(h: u64) -> f64 {
    let scale = 1.0 / 4_294_967_296.0;
    let u1 = ((h >> 32) as f64 + 0.5) * scale;
    let u2 = ((h & 0xffff_ffff) as f64 + 0.5) * scale;
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

/// Left knot index of `x` and the cosine-eased weight of the right knot.
fn knot(x: i64, period: i64) -> (i64, f64) {
    let period = period.max(1);
    let frac = x.rem_euclid(period) as f64 / period as f64;
    (x.div_euclid(period), 0.5 - 0.5 * (PI * frac).cos())
}

/// Smooth unit-variance noise: cosine interpolation of hashed N(0,1) knots every `period` hours,
/// rescaled so the variance is 1 between knots too.
fn smooth(seed: u64, key: u64, tag: u64, hour: i64, period: i64) -> f64 {
    let (k, w) = knot(hour, period);
    let z0 = normal(hash(seed, key, tag, k));
    let z1 = normal(hash(seed, key, tag, k.saturating_add(1)));
    ((1.0 - w) * z0 + w * z1) / ((1.0 - w).powi(2) + w * w).sqrt()
}

/// Smooth unit-variance noise over (issued, target) on a FC_KNOT_H grid: forecast errors drift
/// smoothly along the target hours of one issue and between successive issues.
fn smooth2(seed: u64, key: u64, tag: u64, issued: i64, target: i64) -> f64 {
    let (ka, wa) = knot(issued, FC_KNOT_H);
    let (kb, wb) = knot(target, FC_KNOT_H);
    let mut sum = 0.0;
    let mut norm = 0.0;
    for (da, fa) in [(0, 1.0 - wa), (1, wa)] {
        for (db, fb) in [(0, 1.0 - wb), (1, wb)] {
            let w = fa * fb;
            let a = ka.saturating_add(da);
            let b = kb.saturating_add(db);
            sum += w * normal(hash2(seed, key, tag, a, b));
            norm += w * w;
        }
    }
    sum / norm.sqrt()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    /// 2021-01-01 00:00 UTC in hours since the epoch.
    const Y2021: i64 = 447_072;
    const YEAR_H: i64 = 8760;

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    fn all_profiles() -> Vec<MarketProfile> {
        vec![
            MarketProfile::pjm_like(),
            MarketProfile::germany_like(),
            MarketProfile::nordic_like(),
            MarketProfile::france_like(),
            MarketProfile::texas_like(),
        ]
    }

    #[test]
    fn same_inputs_give_bitwise_same_outputs() {
        let c = Climate::for_location(40.0, -75.0);
        let m = MarketProfile::germany_like();
        for h in [Y2021, Y2021 + 13, Y2021 + 4000, -50_000] {
            let (t1, r1) = weather_actual(7, 9, &c, h);
            let (t2, r2) = weather_actual(7, 9, &c, h);
            assert_eq!((t1.to_bits(), r1.to_bits()), (t2.to_bits(), r2.to_bits()));
            let (ft1, fr1) = weather_forecast(7, 9, &c, h, h - 30);
            let (ft2, fr2) = weather_forecast(7, 9, &c, h, h - 30);
            assert_eq!(
                (ft1.to_bits(), fr1.to_bits()),
                (ft2.to_bits(), fr2.to_bits())
            );
            assert_eq!(
                price_actual(7, 9, &m, h).to_bits(),
                price_actual(7, 9, &m, h).to_bits()
            );
            assert_eq!(
                price_forecast(7, 9, &m, h, h - 30).to_bits(),
                price_forecast(7, 9, &m, h, h - 30).to_bits()
            );
        }
    }

    #[test]
    fn different_seeds_and_keys_give_different_series() {
        let c = Climate::for_location(50.0, 8.0);
        let m = MarketProfile::pjm_like();
        let series = |seed: u64, key: u64| -> Vec<(f64, f64)> {
            (Y2021..Y2021 + 48)
                .map(|h| {
                    (
                        weather_actual(seed, key, &c, h).0,
                        price_actual(seed, key, &m, h),
                    )
                })
                .collect()
        };
        let a = series(1, key_of("node-a"));
        for other in [series(2, key_of("node-a")), series(1, key_of("node-b"))] {
            let differing = a
                .iter()
                .zip(&other)
                .filter(|(x, y)| (x.0 - y.0).abs() > 1e-9 && (x.1 - y.1).abs() > 1e-9)
                .count();
            assert!(differing >= 45, "only {differing} of 48 hours differ");
        }
    }

    #[test]
    fn call_order_does_not_matter() {
        let c = Climate::for_location(40.0, -75.0);
        let m = MarketProfile::texas_like();
        let hours: Vec<i64> = (0..200).map(|i| Y2021 + i * 7).collect();
        let forward: Vec<(u64, u64, u64)> = hours
            .iter()
            .map(|&h| {
                (
                    weather_actual(3, 4, &c, h).0.to_bits(),
                    price_actual(3, 4, &m, h).to_bits(),
                    price_forecast(3, 4, &m, h, h - 20).to_bits(),
                )
            })
            .collect();
        // Ask in reverse, interleaved with unrelated calls for other keys.
        for (i, &h) in hours.iter().enumerate().rev() {
            let _ = price_actual(3, 99, &m, h + 1);
            let _ = weather_actual(8, 4, &c, h - 5);
            let got = (
                weather_actual(3, 4, &c, h).0.to_bits(),
                price_actual(3, 4, &m, h).to_bits(),
                price_forecast(3, 4, &m, h, h - 20).to_bits(),
            );
            assert_eq!(got, forward[i], "hour {h}");
        }
    }

    #[test]
    fn mid_latitude_year_has_the_configured_mean_seasons_and_days() {
        let c = Climate::for_location(40.0, -75.0);
        let year: Vec<(i64, f64, f64)> = (Y2021..Y2021 + YEAR_H)
            .map(|h| {
                let (t, rh) = weather_actual(11, key_of("phl"), &c, h);
                (h, t, rh)
            })
            .collect();
        let temps: Vec<f64> = year.iter().map(|x| x.1).collect();
        let m = mean(&temps);
        assert!(
            (m - c.annual_mean_c).abs() <= 1.5,
            "mean {m} vs {}",
            c.annual_mean_c
        );

        let (jan, jul) = jan_jul_means(&c, 11);
        let expect = 2.0 * c.seasonal_amp_c;
        assert!(
            (jul - jan) > 0.75 * expect && (jul - jan) < 1.25 * expect,
            "summer-winter {} vs {expect}",
            jul - jan
        );

        // Longitude -75: local solar time = UTC - 5 h.
        let at_solar = |solar: i64| -> Vec<&(i64, f64, f64)> {
            year.iter()
                .filter(|x| (x.0 - 5).rem_euclid(24) == solar)
                .collect()
        };
        let t15 = mean(&at_solar(15).iter().map(|x| x.1).collect::<Vec<_>>());
        let t05 = mean(&at_solar(5).iter().map(|x| x.1).collect::<Vec<_>>());
        let expect = 2.0 * c.diurnal_amp_c;
        assert!(
            (t15 - t05) > 0.8 * expect && (t15 - t05) < 1.2 * expect,
            "15 vs 05: {} vs {expect}",
            t15 - t05
        );

        assert!(year.iter().all(|x| (5.0..=100.0).contains(&x.2)));
        let rh15 = mean(&at_solar(15).iter().map(|x| x.2).collect::<Vec<_>>());
        let rh05 = mean(&at_solar(5).iter().map(|x| x.2).collect::<Vec<_>>());
        assert!(rh05 > rh15 + 10.0, "RH night {rh05} vs afternoon {rh15}");
        let rh_mean = mean(&year.iter().map(|x| x.2).collect::<Vec<_>>());
        assert!(
            (rh_mean - c.mean_rh_pct).abs() < 6.0,
            "RH mean {rh_mean} vs {}",
            c.mean_rh_pct
        );
    }

    /// Mean temperature of January and of July over 2021..2023 (three years, so that fronts
    /// average out: about 1 K of noise on the difference).
    fn jan_jul_means(c: &Climate, seed: u64) -> (f64, f64) {
        let month = |first_day: i64| -> f64 {
            let v: Vec<f64> = (0..3)
                .flat_map(|y| {
                    let start = Y2021 + (y * 365 + first_day) * 24;
                    start..start + 31 * 24
                })
                .map(|h| weather_actual(seed, 6, c, h).0)
                .collect();
            mean(&v)
        };
        (month(0), month(181))
    }

    #[test]
    fn southern_hemisphere_seasons_are_flipped() {
        let c = Climate::for_location(-35.0, 150.0);
        let (jan, jul) = jan_jul_means(&c, 5);
        let expect = 2.0 * c.seasonal_amp_c;
        assert!(
            (jan - jul) > 0.75 * expect && (jan - jul) < 1.25 * expect,
            "January-July {} vs {expect}",
            jan - jul
        );
    }

    #[test]
    fn rh_stays_in_range_even_for_extreme_climates() {
        for (lat, lon) in [(0.0, 0.0), (70.0, 25.0), (-80.0, 0.0), (25.0, 45.0)] {
            let mut c = Climate::for_location(lat, lon);
            for rh in [1.0, 99.0] {
                c.mean_rh_pct = rh;
                for h in (Y2021..Y2021 + YEAR_H).step_by(7) {
                    let (t, r) = weather_actual(1, 2, &c, h);
                    assert!(t.is_finite() && (5.0..=100.0).contains(&r), "{t} {r}");
                    let (t, r) = weather_forecast(1, 2, &c, h, h - 100);
                    assert!(t.is_finite() && (5.0..=100.0).contains(&r), "{t} {r}");
                }
            }
        }
    }

    fn price_year(m: &MarketProfile, seed: u64, years: i64) -> Vec<f64> {
        (Y2021..Y2021 + years * YEAR_H)
            .map(|h| price_actual(seed, key_of("dc-1"), m, h))
            .collect()
    }

    #[test]
    fn pjm_year_mean_is_near_base() {
        let m = MarketProfile::pjm_like();
        let mu = mean(&price_year(&m, 21, 1));
        assert!(
            (mu / m.base_usd_per_mwh - 1.0).abs() < 0.15,
            "mean {mu} vs base {}",
            m.base_usd_per_mwh
        );
    }

    #[test]
    fn prices_stay_within_floor_and_cap_and_forecasts_too() {
        for m in all_profiles() {
            for (i, h) in (Y2021..Y2021 + 2 * YEAR_H).enumerate() {
                let p = price_actual(4, 5, &m, h);
                assert!(p >= m.negative_floor_usd_per_mwh && p <= m.spike_cap_usd_per_mwh);
                if i % 5 == 0 {
                    let f = price_forecast(4, 5, &m, h, h - (i as i64 % 97));
                    assert!(f >= m.negative_floor_usd_per_mwh && f <= m.spike_cap_usd_per_mwh);
                }
            }
        }
    }

    #[test]
    fn germany_has_negative_hours_like_the_data_and_pjm_nordic_do_not() {
        // dayahead_DE 2016-2017: 1.38 % of hours were negative; NP none, PJM 0.4 %.
        let share = |m: &MarketProfile| {
            let v = price_year(m, 8, 2);
            v.iter().filter(|p| **p < 0.0).count() as f64 / v.len() as f64
        };
        let de = share(&MarketProfile::germany_like());
        assert!((0.004..=0.04).contains(&de), "DE negative share {de}");
        assert!(share(&MarketProfile::nordic_like()) < 0.001);
        assert!(share(&MarketProfile::pjm_like()) < 0.005);
    }

    #[test]
    fn texas_spikes_above_1000_at_about_spike_prob() {
        let m = MarketProfile::texas_like();
        let v = price_year(&m, 13, 5);
        let rate = v.iter().filter(|p| **p > 1000.0).count() as f64 / v.len() as f64;
        assert!(
            rate > 0.6 * m.spike_prob && rate < 1.4 * m.spike_prob,
            "rate {rate} vs {}",
            m.spike_prob
        );
        // A calm profile hardly ever gets there.
        let calm = price_year(&MarketProfile::nordic_like(), 13, 1);
        assert!(calm.iter().filter(|p| **p > 500.0).count() <= 3);
    }

    #[test]
    fn evening_peak_is_dearer_than_the_night() {
        for m in all_profiles() {
            let mut peak = Vec::new();
            let mut night = Vec::new();
            for h in Y2021..Y2021 + YEAR_H {
                let p = price_actual(2, 3, &m, h);
                match (h + i64::from(m.utc_offset_h)).rem_euclid(24) {
                    18 | 19 => peak.push(p),
                    3 | 4 => night.push(p),
                    _ => {}
                }
            }
            let ratio = mean(&peak) / mean(&night);
            // Shape gives 1 + swing, diluted by noise: at least a third of the swing shows.
            assert!(ratio > 1.0 + m.daily_swing / 3.0, "{m:?}: ratio {ratio}");
        }
    }

    #[test]
    fn forecasts_equal_actuals_at_lead_zero() {
        let c = Climate::for_location(52.0, 13.0);
        for m in all_profiles() {
            for h in (Y2021..Y2021 + YEAR_H).step_by(13) {
                assert_eq!(
                    price_forecast(1, 2, &m, h, h).to_bits(),
                    price_actual(1, 2, &m, h).to_bits()
                );
            }
        }
        for h in (Y2021..Y2021 + YEAR_H).step_by(13) {
            assert_eq!(
                weather_forecast(1, 2, &c, h, h),
                weather_actual(1, 2, &c, h)
            );
        }
    }

    /// Errors of forecasts issued `lead` hours ahead, over a year, for hours without spikes.
    fn price_errors(m: &MarketProfile, lead: i64) -> Vec<f64> {
        (Y2021..Y2021 + YEAR_H)
            .filter_map(|h| {
                let a = price_actual(6, 7, m, h);
                let p = price_parts(6, 7, m, h);
                p.spike
                    .is_none()
                    .then(|| price_forecast(6, 7, m, h, h - lead) - a)
            })
            .collect()
    }

    #[test]
    fn price_forecast_error_grows_with_lead_is_unbiased_and_calibrated() {
        for m in [
            MarketProfile::pjm_like(),
            MarketProfile::germany_like(),
            MarketProfile::nordic_like(),
        ] {
            let mae = |lead| {
                mean(
                    &price_errors(&m, lead)
                        .iter()
                        .map(|e| e.abs())
                        .collect::<Vec<_>>(),
                )
            };
            let (mae6, mae48) = (mae(6), mae(48));
            assert!(mae48 > 1.3 * mae6, "{m:?}: 48 h {mae48} vs 6 h {mae6}");

            let bias = mean(&price_errors(&m, 24));
            assert!(
                bias.abs() < 0.015 * m.base_usd_per_mwh,
                "{m:?}: bias {bias}"
            );

            // Gaussian error: mean |error| / price level = sqrt(2/pi) * forecast_error.
            let rel: Vec<f64> = (Y2021..Y2021 + YEAR_H)
                .filter_map(|h| {
                    let p = price_parts(6, 7, &m, h);
                    let err = price_forecast(6, 7, &m, h, h - 24) - price_actual(6, 7, &m, h);
                    p.spike.is_none().then(|| err.abs() / p.level)
                })
                .collect();
            let rel = mean(&rel) / (2.0 / PI).sqrt();
            assert!(
                rel > 0.85 * m.forecast_error && rel < 1.15 * m.forecast_error,
                "{m:?}: relative error {rel}"
            );
        }
    }

    #[test]
    fn most_spikes_are_not_foreseen() {
        let m = MarketProfile::texas_like();
        let (mut spikes, mut seen) = (0, 0);
        for h in Y2021..Y2021 + 5 * YEAR_H {
            let a = price_actual(9, 9, &m, h);
            if a > 1000.0 {
                spikes += 1;
                if price_forecast(9, 9, &m, h, h - 24) > 600.0 {
                    seen += 1;
                }
            }
        }
        assert!(spikes > 20);
        assert!(seen > 0 && seen * 2 < spikes, "{seen} of {spikes} foreseen");
    }

    #[test]
    fn weather_forecast_error_grows_with_lead_and_is_unbiased() {
        let c = Climate::for_location(45.0, 7.0);
        let errs = |lead: i64| -> Vec<f64> {
            (Y2021..Y2021 + YEAR_H)
                .map(|h| weather_forecast(3, 3, &c, h, h - lead).0 - weather_actual(3, 3, &c, h).0)
                .collect()
        };
        let sd = |v: &[f64]| (v.iter().map(|e| e * e).sum::<f64>() / v.len() as f64).sqrt();
        let (e6, e24, e48, e72) = (errs(6), errs(24), errs(48), errs(72));
        let mae = |v: &[f64]| mean(&v.iter().map(|e| e.abs()).collect::<Vec<_>>());
        assert!(mae(&e48) > 1.5 * mae(&e6));
        assert!((0.8..1.2).contains(&sd(&e24)), "24 h sd {}", sd(&e24));
        assert!((2.0..3.0).contains(&sd(&e72)), "72 h sd {}", sd(&e72));
        assert!(mean(&e72).abs() < 0.25, "bias {}", mean(&e72));
    }

    #[test]
    fn key_of_is_pinned_fnv1a() {
        assert_eq!(key_of(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(key_of("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(key_of("node-1"), 0xe696_ecc2_2078_79c3);
        assert_ne!(key_of("node-1"), key_of("node-2"));
    }

    #[test]
    fn by_name_finds_each_profile() {
        assert_eq!(
            MarketProfile::by_name("pjm"),
            Some(MarketProfile::pjm_like())
        );
        assert_eq!(
            MarketProfile::by_name("germany"),
            Some(MarketProfile::germany_like())
        );
        assert_eq!(
            MarketProfile::by_name("nordic"),
            Some(MarketProfile::nordic_like())
        );
        assert_eq!(
            MarketProfile::by_name("France"),
            Some(MarketProfile::france_like())
        );
        assert_eq!(
            MarketProfile::by_name("texas"),
            Some(MarketProfile::texas_like())
        );
        assert_eq!(MarketProfile::by_name("ercot-ish"), None);
    }
}
