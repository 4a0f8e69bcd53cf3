"""Solver coefficients generated from the derivations in seeds.analysis.

GENERATED FILE - DO NOT EDIT. Regenerate with: make coefficients (seeds coefficients).
"""

import math  # noqa: F401  (printed expressions may use math.e / math.pi)

from seeds.solvers._backend import (  # noqa: F401
    absolute,
    asinh,
    atan,
    elementwise,
    exp,
    expm1,
    log,
    log1p,
    sqrt,
    tan,
    where,
)


@elementwise
def phi_1(z):
    """phi_1(z) = sum_j z^j/(j+1)!: expm1 closed form for |z| > 0.0, 1 Taylor terms below."""
    near = absolute(z) <= 0.0
    z_far = where(near, 1.0, z)
    return where(near, 1.0000000000000000, expm1(z_far)/z_far)


@elementwise
def phi_2(z):
    """phi_2(z) = sum_j z^j/(j+2)!: expm1 closed form for |z| > 0.464, 13 Taylor terms below."""
    near = absolute(z) <= 0.464
    z_far = where(near, 1.0, z)
    z_near = where(near, z, 0.0)
    return where(near, 0.50000000000000000 + z_near * (0.16666666666666667 + z_near * (0.041666666666666667 + z_near * (0.0083333333333333333 + z_near * (0.0013888888888888889 + z_near * (0.00019841269841269841 + z_near * (2.4801587301587302e-5 + z_near * (2.7557319223985891e-6 + z_near * (2.7557319223985891e-7 + z_near * (2.5052108385441719e-8 + z_near * (2.0876756987868099e-9 + z_near * (1.6059043836821615e-10 + z_near * (1.1470745597729725e-11)))))))))))), (-z_far + expm1(z_far))/z_far**2)


@elementwise
def phi_3(z):
    """phi_3(z) = sum_j z^j/(j+3)!: expm1 closed form for |z| > 1.674, 20 Taylor terms below."""
    near = absolute(z) <= 1.674
    z_far = where(near, 1.674, z)
    z_near = where(near, z, 0.0)
    return where(near, 0.16666666666666667 + z_near * (0.041666666666666667 + z_near * (0.0083333333333333333 + z_near * (0.0013888888888888889 + z_near * (0.00019841269841269841 + z_near * (2.4801587301587302e-5 + z_near * (2.7557319223985891e-6 + z_near * (2.7557319223985891e-7 + z_near * (2.5052108385441719e-8 + z_near * (2.0876756987868099e-9 + z_near * (1.6059043836821615e-10 + z_near * (1.1470745597729725e-11 + z_near * (7.6471637318198165e-13 + z_near * (4.7794773323873853e-14 + z_near * (2.8114572543455208e-15 + z_near * (1.5619206968586226e-16 + z_near * (8.2206352466243297e-18 + z_near * (4.1103176233121649e-19 + z_near * (1.9572941063391261e-20 + z_near * (8.8967913924505733e-22))))))))))))))))))), (-z_far**2/2 - z_far + expm1(z_far))/z_far**3)


@elementwise
def noise_kernel_variable(lam, eta):
    """nu(lambda): the model kernel is e^(-rate nu) dnu (parameterisation noise, eta = eta)."""
    return lam


@elementwise
def noise_kernel_variable_increment(lam_s, h, eta):
    """nu(lam_s + h) - nu(lam_s), free of cancellation for small h (parameterisation noise, eta = eta)."""
    return h


@elementwise
def noise_log_snr(nu, eta):
    """lambda(nu), the inverse of the kernel variable (parameterisation noise, eta = eta)."""
    return nu


@elementwise
def noise_linear_factor(lam_s, h, eta):
    """Phi(t, s), the integrating factor from lambda_s to lambda_s + h (parameterisation noise, eta = eta)."""
    return 1


@elementwise
def noise_step_scale(lam, eta):
    """Factor of int_0^h e^(rate (h - tau)) m dtau in the model term, at lambda_t (parameterisation noise, eta = eta)."""
    return (-eta**2 - 1)*exp(-lam)


@elementwise
def noise_noise_scale(lam, eta):
    """Factor of the noise-process increment in the step noise, at lambda_t (parameterisation noise, eta = eta)."""
    return 1


@elementwise
def data_kernel_variable(lam, eta):
    """nu(lambda): the model kernel is e^(-rate nu) dnu (parameterisation data, eta = eta)."""
    return lam*(eta**2 + 1)


@elementwise
def data_kernel_variable_increment(lam_s, h, eta):
    """nu(lam_s + h) - nu(lam_s), free of cancellation for small h (parameterisation data, eta = eta)."""
    return eta**2*h + h


@elementwise
def data_log_snr(nu, eta):
    """lambda(nu), the inverse of the kernel variable (parameterisation data, eta = eta)."""
    return nu/(eta**2 + 1)


@elementwise
def data_linear_factor(lam_s, h, eta):
    """Phi(t, s), the integrating factor from lambda_s to lambda_s + h (parameterisation data, eta = eta)."""
    return exp(-h*(eta**2 + 1))


@elementwise
def data_step_scale(lam, eta):
    """Factor of int_0^h e^(rate (h - tau)) m dtau in the model term, at lambda_t (parameterisation data, eta = eta)."""
    return 1


@elementwise
def data_noise_scale(lam, eta):
    """Factor of the noise-process increment in the step noise, at lambda_t (parameterisation data, eta = eta)."""
    return exp(-lam*(eta**2 + 1))


@elementwise
def edm_kernel_variable(lam, sigma_data):
    """nu(lambda): the model kernel is e^(-rate nu) dnu (parameterisation edm, eta = 1)."""
    return log1p(sigma_data**2*exp(2*lam))/2


@elementwise
def edm_kernel_variable_increment(lam_s, h, sigma_data):
    """nu(lam_s + h) - nu(lam_s), free of cancellation for small h (parameterisation edm, eta = 1)."""
    return where(sigma_data**2*exp(2*lam_s)*absolute(expm1(2*h))/(sigma_data**2*exp(2*lam_s) + 1) < (1/2), log1p(sigma_data**2*exp(2*lam_s)*expm1(2*h)/(sigma_data**2*exp(2*lam_s) + 1)), log((sigma_data**2*exp(2*h + 2*lam_s) + 1)/(sigma_data**2*exp(2*lam_s) + 1)))/2


@elementwise
def edm_log_snr(nu, sigma_data):
    """lambda(nu), the inverse of the kernel variable (parameterisation edm, eta = 1)."""
    return -log(sigma_data) + log(expm1(2*nu))/2


@elementwise
def edm_linear_factor(lam_s, h, sigma_data):
    """Phi(t, s), the integrating factor from lambda_s to lambda_s + h (parameterisation edm, eta = 1)."""
    return (sigma_data**2*exp(2*h + 2*lam_s) + 1)*exp(-2*h)/(sigma_data**2*exp(2*lam_s) + 1)


@elementwise
def edm_step_scale(lam, sigma_data):
    """Factor of int_0^h e^(rate (h - tau)) m dtau in the model term, at lambda_t (parameterisation edm, eta = 1)."""
    return 2*sqrt(sigma_data**2*exp(2*lam) + 1)*exp(-2*lam)/sigma_data


@elementwise
def edm_noise_scale(lam, sigma_data):
    """Factor of the noise-process increment in the step noise, at lambda_t (parameterisation edm, eta = 1)."""
    return sigma_data**2 + exp(-2*lam)


@elementwise
def edm_ode_kernel_variable(lam, sigma_data):
    """nu(lambda): the model kernel is e^(-rate nu) dnu (parameterisation edm, eta = 0)."""
    return -log(atan(exp(-lam)/sigma_data))


@elementwise
def edm_ode_kernel_variable_increment(lam_s, h, sigma_data):
    """nu(lam_s + h) - nu(lam_s), free of cancellation for small h (parameterisation edm, eta = 0)."""
    return -where(absolute(atan(exp(-lam_s)*expm1(-h)/(sigma_data*(1 + exp(-lam_s)*exp(-h - lam_s)/sigma_data**2))))/atan(exp(-lam_s)/sigma_data) < (1/2), log1p(atan(exp(-lam_s)*expm1(-h)/(sigma_data*(1 + exp(-lam_s)*exp(-h - lam_s)/sigma_data**2)))/atan(exp(-lam_s)/sigma_data)), log(atan(exp(-h - lam_s)/sigma_data)/atan(exp(-lam_s)/sigma_data)))


@elementwise
def edm_ode_log_snr(nu, sigma_data):
    """lambda(nu), the inverse of the kernel variable (parameterisation edm, eta = 0)."""
    return -log(sigma_data*tan(exp(-nu)))


@elementwise
def edm_ode_linear_factor(lam_s, h, sigma_data):
    """Phi(t, s), the integrating factor from lambda_s to lambda_s + h (parameterisation edm, eta = 0)."""
    return sqrt(sigma_data**2*exp(2*h + 2*lam_s) + 1)*exp(-h)/sqrt(sigma_data**2*exp(2*lam_s) + 1)


@elementwise
def edm_ode_step_scale(lam, sigma_data):
    """Factor of int_0^h e^(rate (h - tau)) m dtau in the model term, at lambda_t (parameterisation edm, eta = 0)."""
    return sqrt(sigma_data**2*exp(2*lam) + 1)*exp(-lam)*atan(exp(-lam)/sigma_data)


@elementwise
def edm_ode_noise_scale(lam, sigma_data):
    """Factor of the noise-process increment in the step noise, at lambda_t (parameterisation edm, eta = 0)."""
    return sqrt(sigma_data**2*exp(2*lam) + 1)*exp(-lam)


@elementwise
def noise_time_integral_antiderivative(lam, eta):
    """A(lambda), A' = model kernel * noise_scale: the stage noise's weight on dK (parameterisation noise, eta = eta)."""
    return -exp(-lam)


@elementwise
def noise_time_integral_scale(lam, eta):
    """e^(rate nu(lambda)), at lambda_t the factor of A(t) dK - dR in the stage noise (parameterisation noise, eta = eta)."""
    return exp(lam)


@elementwise
def data_time_integral_antiderivative(lam, eta):
    """A(lambda), A' = model kernel * noise_scale: the stage noise's weight on dK (parameterisation data, eta = eta)."""
    return (eta**2 + 1)*(lam + 20)


@elementwise
def data_time_integral_scale(lam, eta):
    """e^(rate nu(lambda)), at lambda_t the factor of A(t) dK - dR in the stage noise (parameterisation data, eta = eta)."""
    return exp(-lam*(eta**2 + 1))


@elementwise
def edm_time_integral_antiderivative(lam, sigma_data):
    """A(lambda), A' = model kernel * noise_scale: the stage noise's weight on dK (parameterisation edm, eta = 1)."""
    return -sigma_data**2*asinh(exp(-lam)/sigma_data)


@elementwise
def edm_time_integral_scale(lam, sigma_data):
    """e^(rate nu(lambda)), at lambda_t the factor of A(t) dK - dR in the stage noise (parameterisation edm, eta = 1)."""
    return sqrt(sigma_data**2*exp(2*lam) + 1)


@elementwise
def seeds_1_stage_1_value_weight(h, rate):
    """seeds-1, stage 1: weight on the model value (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)


@elementwise
def seeds_2_phi_1_stage_1_value_weight(h, rate, c2):
    """seeds-2/phi_1, stage 1: weight on the model value (times step_scale), in nu-steps h."""
    return c2*h*phi_1(c2*h*rate)


@elementwise
def seeds_2_phi_1_stage_2_value_weight(h, rate, c2):
    """seeds-2/phi_1, stage 2: weight on the model value (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)


@elementwise
def seeds_2_phi_1_stage_2_slope_weight(h, rate, c2):
    """seeds-2/phi_1, stage 2: weight on the model slope (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)/(2*c2)


@elementwise
def seeds_2_phi_2_stage_1_value_weight(h, rate, c2):
    """seeds-2/phi_2, stage 1: weight on the model value (times step_scale), in nu-steps h."""
    return c2*h*phi_1(c2*h*rate)


@elementwise
def seeds_2_phi_2_stage_2_value_weight(h, rate, c2):
    """seeds-2/phi_2, stage 2: weight on the model value (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)


@elementwise
def seeds_2_phi_2_stage_2_slope_weight(h, rate, c2):
    """seeds-2/phi_2, stage 2: weight on the model slope (times step_scale), in nu-steps h."""
    return h*phi_2(h*rate)/c2


@elementwise
def seeds_3_stage_1_value_weight(h, rate, c2, c3):
    """seeds-3, stage 1: weight on the model value (times step_scale), in nu-steps h."""
    return c2*h*phi_1(c2*h*rate)


@elementwise
def seeds_3_stage_2_value_weight(h, rate, c2, c3):
    """seeds-3, stage 2: weight on the model value (times step_scale), in nu-steps h."""
    return c3*h*phi_1(c3*h*rate)


@elementwise
def seeds_3_stage_2_slope_weight(h, rate, c2, c3):
    """seeds-3, stage 2: weight on the model slope (times step_scale), in nu-steps h."""
    return c3**2*h*phi_2(c3*h*rate)/c2


@elementwise
def seeds_3_stage_3_value_weight(h, rate, c2, c3):
    """seeds-3, stage 3: weight on the model value (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)


@elementwise
def seeds_3_stage_3_slope_weight(h, rate, c2, c3):
    """seeds-3, stage 3: weight on the model slope (times step_scale), in nu-steps h."""
    return h*phi_2(h*rate)/c3


@elementwise
def esra_stage_1_value_weight(h, rate, c2):
    """esra, stage 1: weight on the model value (times step_scale), in nu-steps h."""
    return c2*h*phi_1(c2*h*rate)


@elementwise
def esra_stage_2_value_weight(h, rate, c2):
    """esra, stage 2: weight on the model value (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)


@elementwise
def esra_stage_2_slope_weight(h, rate, c2):
    """esra, stage 2: weight on the model slope (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)/(2*c2)


@elementwise
def multistep_2_phi_1_stage_1_value_weight(h, rate, r):
    """multistep-2/phi_1, stage 1: weight on the model value (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)


@elementwise
def multistep_2_phi_1_stage_1_slope_weight(h, rate, r):
    """multistep-2/phi_1, stage 1: weight on the model slope (times step_scale), in nu-steps h."""
    return -h*phi_1(h*rate)/(2*r)


@elementwise
def multistep_2_phi_2_stage_1_value_weight(h, rate, r):
    """multistep-2/phi_2, stage 1: weight on the model value (times step_scale), in nu-steps h."""
    return h*phi_1(h*rate)


@elementwise
def multistep_2_phi_2_stage_1_slope_weight(h, rate, r):
    """multistep-2/phi_2, stage 1: weight on the model slope (times step_scale), in nu-steps h."""
    return -h*phi_2(h*rate)/r


SCHEME_WEIGHTS = {
    'seeds-1': ((seeds_1_stage_1_value_weight, ),),
    'seeds-2/phi_1': ((seeds_2_phi_1_stage_1_value_weight, ), (seeds_2_phi_1_stage_2_value_weight, seeds_2_phi_1_stage_2_slope_weight, ),),
    'seeds-2/phi_2': ((seeds_2_phi_2_stage_1_value_weight, ), (seeds_2_phi_2_stage_2_value_weight, seeds_2_phi_2_stage_2_slope_weight, ),),
    'seeds-3': ((seeds_3_stage_1_value_weight, ), (seeds_3_stage_2_value_weight, seeds_3_stage_2_slope_weight, ), (seeds_3_stage_3_value_weight, seeds_3_stage_3_slope_weight, ),),
    'esra': ((esra_stage_1_value_weight, ), (esra_stage_2_value_weight, esra_stage_2_slope_weight, ),),
    'multistep-2/phi_1': ((multistep_2_phi_1_stage_1_value_weight, multistep_2_phi_1_stage_1_slope_weight, ),),
    'multistep-2/phi_2': ((multistep_2_phi_2_stage_1_value_weight, multistep_2_phi_2_stage_1_slope_weight, ),),
}
# Per scheme: stage fractions and slope nodes (None: a first-order stage), from its parameters.
SCHEME_STAGES = {
    'seeds-1': lambda : ((1, None),),
    'seeds-2/phi_1': lambda c2: ((c2, None), (1, c2),),
    'seeds-2/phi_2': lambda c2: ((c2, None), (1, c2),),
    'seeds-3': lambda c2, c3: ((c2, None), (c3, c2), (1, c3),),
    'esra': lambda c2: ((c2, None), (1, c2),),
    'multistep-2/phi_1': lambda r: ((1, -r),),
    'multistep-2/phi_2': lambda r: ((1, -r),),
}
# Per scheme: the noise each stage adds ('increment' or 'time-integral', analysis.schemes.Stage).
SCHEME_STAGE_NOISES = {'seeds-1': ('increment',), 'seeds-2/phi_1': ('increment', 'increment'), 'seeds-2/phi_2': ('increment', 'increment'), 'seeds-3': ('increment', 'increment', 'increment'), 'esra': ('time-integral', 'increment'), 'multistep-2/phi_1': ('increment',), 'multistep-2/phi_2': ('increment',)}
SCHEME_PARAMETERS = {'seeds-1': (), 'seeds-2/phi_1': ('c2',), 'seeds-2/phi_2': ('c2',), 'seeds-3': ('c2', 'c3'), 'esra': ('c2',), 'multistep-2/phi_1': ('r',), 'multistep-2/phi_2': ('r',)}
KERNEL_RATES = {'noise': 1, 'data': -1, 'edm': 1, 'edm_ode': 1}


# Every method, declared once in seeds.analysis.methods, with its predicted orders (seeds.analysis.orders):
# global strong and weak orders and the local error powers p1, p2, q2; None where the one-step expansion
# has no model of the method. nonlinear_orders: the orders with a nonlinear model output
# (seeds.analysis.nonlinear), for the singlestep exponential SDE methods; None for the others.
# largest_stable_step: the largest step in lambda whose mean factor on a point-mass data law stays <= 1
# (seeds.analysis.stability; math.inf: none up to its LARGEST_STEP), for the singlestep exponential methods.
METHOD_TABLE = {
    'seeds-1/noise': {'name': 'seeds-1', 'kind': 'exponential', 'prediction': 'noise', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': 'seeds-1', 'fractions': (), 'selected_by': (('prediction', 'noise'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': 2.0, 'p2': 1.5, 'q2': 2.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 1.0}, 'largest_stable_step': math.inf},
    'seeds-2/noise': {'name': 'seeds-2', 'kind': 'exponential', 'prediction': 'noise', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'seeds-2/phi_1', 'fractions': (0.5,), 'selected_by': (('prediction', 'noise'), ('variant', 'phi_1')), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': 3.0, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': 1.386294361120557},
    'seeds-2/noise/phi_2': {'name': 'seeds-2', 'kind': 'exponential', 'prediction': 'noise', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'seeds-2/phi_2', 'fractions': (0.5,), 'selected_by': (('prediction', 'noise'), ('variant', 'phi_2')), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': 3.0, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': 1.734510071394866},
    'seeds-3/noise': {'name': 'seeds-3', 'kind': 'exponential', 'prediction': 'noise', 'eta': 1, 'nfe_per_step': 3, 'stochastic': True, 'scheme': 'seeds-3', 'fractions': (0.3333333333333333, 0.6666666666666666), 'selected_by': (('prediction', 'noise'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': 4.0, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': 1.6595597454166442},
    'seeds-1/data': {'name': 'seeds-1', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': 'seeds-1', 'fractions': (), 'selected_by': (('prediction', 'data'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': math.inf, 'p2': 1.5, 'q2': 2.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 1.0}, 'largest_stable_step': math.inf},
    'seeds-2/data': {'name': 'seeds-2', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'seeds-2/phi_1', 'fractions': (0.5,), 'selected_by': (('prediction', 'data'), ('variant', 'phi_1')), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': math.inf, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': math.inf},
    'seeds-2/data/phi_2': {'name': 'seeds-2', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'seeds-2/phi_2', 'fractions': (0.5,), 'selected_by': (('prediction', 'data'), ('variant', 'phi_2')), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': math.inf, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': math.inf},
    'seeds-3/data': {'name': 'seeds-3', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 3, 'stochastic': True, 'scheme': 'seeds-3', 'fractions': (0.3333333333333333, 0.6666666666666666), 'selected_by': (('prediction', 'data'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': math.inf, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': math.inf},
    'seeds-1/edm': {'name': 'seeds-1', 'kind': 'exponential', 'prediction': 'edm', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': 'seeds-1', 'fractions': (), 'selected_by': (('prediction', 'edm'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': 2.0, 'p2': 1.5, 'q2': 2.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 1.0}, 'largest_stable_step': math.inf},
    'seeds-2/edm': {'name': 'seeds-2', 'kind': 'exponential', 'prediction': 'edm', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'seeds-2/phi_1', 'fractions': (0.5,), 'selected_by': (('prediction', 'edm'), ('variant', 'phi_1')), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': 3.0, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': 1.3862987361148535},
    'seeds-2/edm/phi_2': {'name': 'seeds-2', 'kind': 'exponential', 'prediction': 'edm', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'seeds-2/phi_2', 'fractions': (0.5,), 'selected_by': (('prediction', 'edm'), ('variant', 'phi_2')), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': 3.0, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': 1.7345155578971887},
    'seeds-3/edm': {'name': 'seeds-3', 'kind': 'exponential', 'prediction': 'edm', 'eta': 1, 'nfe_per_step': 3, 'stochastic': True, 'scheme': 'seeds-3', 'fractions': (0.3333333333333333, 0.6666666666666666), 'selected_by': (('prediction', 'edm'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': 4.0, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 2.0}, 'largest_stable_step': 1.6595634173866438},
    'esra/noise': {'name': 'esra', 'kind': 'exponential', 'prediction': 'noise', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'esra', 'fractions': (0.75,), 'selected_by': (('prediction', 'noise'),), 'fresh_noise': False, 'refuses_growing_steps': True, 'orders': {'strong': 2.0, 'weak': 2.0, 'p1': 3.0, 'p2': 2.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.5, 'weak': 2.0}, 'largest_stable_step': 1.221720975832774},
    'esra/data': {'name': 'esra', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'esra', 'fractions': (0.75,), 'selected_by': (('prediction', 'data'),), 'fresh_noise': False, 'refuses_growing_steps': True, 'orders': {'strong': 2.0, 'weak': 2.0, 'p1': math.inf, 'p2': 2.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.5, 'weak': 2.0}, 'largest_stable_step': math.inf},
    'esra/edm': {'name': 'esra', 'kind': 'exponential', 'prediction': 'edm', 'eta': 1, 'nfe_per_step': 2, 'stochastic': True, 'scheme': 'esra', 'fractions': (0.75,), 'selected_by': (('prediction', 'edm'),), 'fresh_noise': False, 'refuses_growing_steps': True, 'orders': {'strong': 2.0, 'weak': 2.0, 'p1': 3.0, 'p2': 2.5, 'q2': 3.0}, 'nonlinear_orders': {'strong': 1.5, 'weak': 2.0}, 'largest_stable_step': 1.2217248736608777},
    'euler-maruyama': {'name': 'euler-maruyama', 'kind': 'euler-maruyama', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': None, 'fractions': (), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': 2.0, 'p2': 1.5, 'q2': 2.0}, 'nonlinear_orders': None, 'largest_stable_step': None},
    'ddpm': {'name': 'ddpm', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': 'seeds-1', 'fractions': (), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': math.inf, 'p2': 1.5, 'q2': 2.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 1.0}, 'largest_stable_step': math.inf},
    'sde-dpm-solver++-1': {'name': 'sde-dpm-solver++-1', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': 'seeds-1', 'fractions': (), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': math.inf, 'p2': 1.5, 'q2': 2.0}, 'nonlinear_orders': {'strong': 1.0, 'weak': 1.0}, 'largest_stable_step': math.inf},
    'sde-dpm-solver++-2m': {'name': 'sde-dpm-solver++-2m', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': 'multistep-2/phi_1', 'fractions': (), 'selected_by': (('variant', 'phi_1'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': math.inf, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': None, 'largest_stable_step': None},
    'sde-dpm-solver++-2m/phi_2': {'name': 'sde-dpm-solver++-2m', 'kind': 'exponential', 'prediction': 'data', 'eta': 1, 'nfe_per_step': 1, 'stochastic': True, 'scheme': 'multistep-2/phi_2', 'fractions': (), 'selected_by': (('variant', 'phi_2'),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 2.0, 'p1': math.inf, 'p2': 1.5, 'q2': 3.0}, 'nonlinear_orders': None, 'largest_stable_step': None},
    'dpm-solver-1': {'name': 'dpm-solver-1', 'kind': 'exponential', 'prediction': 'noise', 'eta': 0, 'nfe_per_step': 1, 'stochastic': False, 'scheme': 'seeds-1', 'fractions': (), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': 2.0, 'p2': 2.0, 'q2': 2.0}, 'nonlinear_orders': None, 'largest_stable_step': math.inf},
    'dpm-solver-2': {'name': 'dpm-solver-2', 'kind': 'exponential', 'prediction': 'noise', 'eta': 0, 'nfe_per_step': 2, 'stochastic': False, 'scheme': 'seeds-2/phi_1', 'fractions': (0.5,), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 2.0, 'weak': 2.0, 'p1': 3.0, 'p2': 3.0, 'q2': 3.0}, 'nonlinear_orders': None, 'largest_stable_step': math.inf},
    'dpm-solver-3': {'name': 'dpm-solver-3', 'kind': 'exponential', 'prediction': 'noise', 'eta': 0, 'nfe_per_step': 3, 'stochastic': False, 'scheme': 'seeds-3', 'fractions': (0.3333333333333333, 0.6666666666666666), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 3.0, 'weak': 3.0, 'p1': 4.0, 'p2': 4.0, 'q2': 4.0}, 'nonlinear_orders': None, 'largest_stable_step': math.inf},
    'dpm-solver++-1': {'name': 'dpm-solver++-1', 'kind': 'exponential', 'prediction': 'data', 'eta': 0, 'nfe_per_step': 1, 'stochastic': False, 'scheme': 'seeds-1', 'fractions': (), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': 2.0, 'p2': 2.0, 'q2': 2.0}, 'nonlinear_orders': None, 'largest_stable_step': math.inf},
    'dpm-solver++-2': {'name': 'dpm-solver++-2', 'kind': 'exponential', 'prediction': 'data', 'eta': 0, 'nfe_per_step': 2, 'stochastic': False, 'scheme': 'seeds-2/phi_1', 'fractions': (0.5,), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 2.0, 'weak': 2.0, 'p1': 3.0, 'p2': 3.0, 'q2': 3.0}, 'nonlinear_orders': None, 'largest_stable_step': math.inf},
    'dpm-solver++-3': {'name': 'dpm-solver++-3', 'kind': 'exponential', 'prediction': 'data', 'eta': 0, 'nfe_per_step': 3, 'stochastic': False, 'scheme': 'seeds-3', 'fractions': (0.3333333333333333, 0.6666666666666666), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 3.0, 'weak': 3.0, 'p1': 4.0, 'p2': 4.0, 'q2': 4.0}, 'nonlinear_orders': None, 'largest_stable_step': math.inf},
    'dpm-solver++-2m': {'name': 'dpm-solver++-2m', 'kind': 'exponential', 'prediction': 'data', 'eta': 0, 'nfe_per_step': 1, 'stochastic': False, 'scheme': 'multistep-2/phi_1', 'fractions': (), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 2.0, 'weak': 2.0, 'p1': 3.0, 'p2': 3.0, 'q2': 3.0}, 'nonlinear_orders': None, 'largest_stable_step': None},
    'ddim': {'name': 'ddim', 'kind': 'ddim', 'prediction': 'data', 'eta': 0, 'nfe_per_step': 1, 'stochastic': False, 'scheme': None, 'fractions': (), 'selected_by': (), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 1.0, 'weak': 1.0, 'p1': 2.0, 'p2': 2.0, 'q2': 2.0}, 'nonlinear_orders': None, 'largest_stable_step': None},
    'edm-heun': {'name': 'edm-heun', 'kind': 'edm-heun', 'prediction': 'data', 'eta': 0, 'nfe_per_step': 2, 'stochastic': False, 'scheme': None, 'fractions': (), 'selected_by': (('churn', False),), 'fresh_noise': False, 'refuses_growing_steps': False, 'orders': {'strong': 2.0, 'weak': 2.0, 'p1': 3.0, 'p2': 3.0, 'q2': 3.0}, 'nonlinear_orders': None, 'largest_stable_step': None},
    'edm-churn': {'name': 'edm-heun', 'kind': 'edm-heun', 'prediction': 'data', 'eta': 0, 'nfe_per_step': 2, 'stochastic': True, 'scheme': None, 'fractions': (), 'selected_by': (('churn', True),), 'fresh_noise': True, 'refuses_growing_steps': False, 'orders': None, 'nonlinear_orders': None, 'largest_stable_step': None},
}


# Brownian functionals (analysis/brownian.py): Gram entries over [a, b], stable for every length;
# Legendre moments up to degree LEGENDRE_DEGREE resolve kernels to 1e-14 (L2, relative)
# on intervals of half-length <= LEGENDRE_MAX_HALF_LENGTH.
LEGENDRE_DEGREE = 7
LEGENDRE_MAX_HALF_LENGTH = 0.032094255950565885


@elementwise
def gram_BB(a, b, sigma_data):
    """int_a^b k_B k_B du: covariance of the B and B increments over [a, b]."""
    return -a + b


@elementwise
def gram_BM(a, b, sigma_data):
    """int_a^b k_B k_M du: covariance of the B and M increments over [a, b]."""
    t0 = -b
    return sqrt(2)*exp(t0)*expm1(-a - t0)


@elementwise
def gram_BP(a, b, sigma_data):
    """int_a^b k_B k_P du: covariance of the B and P increments over [a, b]."""
    return sqrt(2)*exp(a)*expm1(-a + b)


@elementwise
def gram_BQ(a, b, sigma_data):
    """int_a^b k_B k_Q du: covariance of the B and Q increments over [a, b]."""
    t0 = exp(a)
    return sqrt(2)*atan(sigma_data*t0*expm1(-a + b)/(sigma_data**2*t0*exp(b) + 1))/sigma_data


@elementwise
def gram_MM(a, b, sigma_data):
    """int_a^b k_M k_M du: covariance of the M and M increments over [a, b]."""
    return (exp(a) + exp(b))*exp(-a)*exp(-2*b)*expm1(-a + b)


@elementwise
def gram_MP(a, b, sigma_data):
    """int_a^b k_M k_P du: covariance of the M and P increments over [a, b]."""
    return -2*a + 2*b


@elementwise
def gram_MQ(a, b, sigma_data):
    """int_a^b k_M k_Q du: covariance of the M and Q increments over [a, b]."""
    return log1p((exp(a) + exp(b))*exp(-a)*expm1(-a + b)/(sigma_data**2*exp(2*b) + 1))


@elementwise
def gram_PP(a, b, sigma_data):
    """int_a^b k_P k_P du: covariance of the P and P increments over [a, b]."""
    t0 = exp(a)
    return t0*(t0 + exp(b))*expm1(-a + b)


@elementwise
def gram_PQ(a, b, sigma_data):
    """int_a^b k_P k_Q du: covariance of the P and Q increments over [a, b]."""
    t0 = sigma_data**2
    t1 = exp(a)
    return log1p(t0*t1*(t1 + exp(b))*expm1(-a + b)/(t0*exp(2*a) + 1))/t0


@elementwise
def gram_QQ(a, b, sigma_data):
    """int_a^b k_Q k_Q du: covariance of the Q and Q increments over [a, b]."""
    t0 = exp(a)
    t1 = sigma_data**2
    return t0*(t0 + exp(b))*expm1(-a + b)/((t1*exp(2*a) + 1)*(t1*exp(2*b) + 1))


@elementwise
def legendre_kernel_B(u, sigma_data):
    """Kernel of B: B_b - B_a = int_a^b kernel(u) dB_u."""
    return 1


@elementwise
def legendre_kernel_M(u, sigma_data):
    """Kernel of M: M_b - M_a = int_a^b kernel(u) dB_u."""
    return sqrt(2)*exp(-u)


@elementwise
def legendre_kernel_P(u, sigma_data):
    """Kernel of P: P_b - P_a = int_a^b kernel(u) dB_u."""
    return sqrt(2)*exp(u)


@elementwise
def legendre_kernel_Q(u, sigma_data):
    """Kernel of Q: Q_b - Q_a = int_a^b kernel(u) dB_u."""
    return sqrt(2)*exp(-u)/(sigma_data**2 + exp(-2*u))
