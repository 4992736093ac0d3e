"""``btgym/CartPole-v0``: the classic cart-pole, built from Blender rigid bodies."""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np
from gymnasium import spaces

from blender_side import Scene, kit
from blender_side.geometry import box
from blender_side.render import Renderer
from btgym.errors import ConfigError

TAU = 0.02  # seconds per step (50 frames per second)
FPS = 50
SUBSTEPS = 10
SOLVER_ITERATIONS = 10
GRAVITY = 9.8
CART_MASS = 1.0
POLE_MASS = 0.1
POLE_LENGTH = 1.0  # Gymnasium's half-length is 0.5
FORCE_MAG = 10.0  # motor_lin_max_impulse; Bullet applies it as a force limit in newtons
MOTOR_SPEED = 1000.0  # target speed in m/s, never reached: the motor always saturates
THETA_THRESHOLD = 12 * 2 * math.pi / 360  # 0.2094 rad, as Gymnasium
X_THRESHOLD = 2.4
INIT_RANGE = 0.05
START_FRAME = 1
MAX_FRAME = 1048574  # Blender's MAXFRAME
CACHE_MARGIN = 100

CART_HALF = (0.25, 0.15, 0.125)
POLE_HALF = (0.04, 0.04, POLE_LENGTH / 2)
PIVOT_Z = CART_HALF[2]  # the hinge sits on top of the cart, whose centre is at z = 0
OBS_MODES = ("state", "rgb")
#: Frictionless, undamped bodies that never sleep (each alone in a collision collection).
PHYSICS = {
    "friction": 0.0,
    "linear_damping": 0.0,
    "angular_damping": 0.0,
    "use_deactivation": False,
}


def add_box(name: str, half: tuple[float, float, float], color=(0.8, 0.8, 0.8)) -> Any:
    """A flat-shaded box of half-extents ``half`` centred on its origin."""
    obj = kit.add_flat_mesh(name, *box(half))
    obj.color = (*color, 1.0)
    return obj


class CartPoleScene(Scene):
    """Balance a pole on a cart pushed left or right with a constant 10 N force.

    ## Description

    Gymnasium's CartPole-v1, simulated by Bullet through Blender's rigid-body world (no
    hand-written dynamics). A passive, hidden *anchor* holds two constraints on the *cart*
    (1 kg box): a SLIDER, so it only moves along world x, and a MOTOR, which drives it. The
    *pole* (0.1 kg, 1 m long thin box: Gymnasium's half-length 0.5) sits on a HINGE about
    the world y axis on top of the cart. Gravity 9.8 m/s^2, no damping or friction, and
    nothing collides. The scene runs at 50 frames per second, one frame per step: 0.02 s,
    as Gymnasium's ``tau``, with 10 physics substeps and 10 solver iterations per frame. A
    step is ``motor target = ...; scene.frame_set(frame + 1)``: no ``bpy.ops``, no loops.

    ## Action Space

    ``Discrete(2)``: ``0`` pushes the cart left (-x), ``1`` right (+x). Blender has no
    "apply force" call, so a step sets the motor's ``motor_lin_target_velocity`` to
    +/-1000 m/s (never reached) with ``motor_lin_max_impulse = 10``: Bullet caps the
    impulse per substep at that times the substep length, a constant +/-10 N push, exactly
    Gymnasium's bang-bang ``force_mag``. The cart's acceleration from rest (~9.9 m/s^2) and
    the pole's fall match Gymnasium's equations integrated finely (Gymnasium's explicit
    Euler lags them by one step). ``force_mag`` (an attribute, for curricula) sets the push
    from the next reset.

    ## Observation Space

    ``obs_mode="state"``: ``Box(-high, high, float32)`` with ``high = [4.8, inf, 0.419, inf]``
    (twice the termination bounds on x and angle, as Gymnasium's) = [cart x (m), cart velocity
    (m/s), pole angle (rad), pole angular velocity (rad/s)], Gymnasium's order and signs:
    x grows to the right, the angle is 0 upright and positive when the pole's top leans to
    +x, so pushing right makes it go negative. Velocities are backward differences over
    the step (Blender does not expose rigid-body velocities): they lag by half a step.
    ``obs_mode="rgb"``: the rendered frame ``(height, width, 3) uint8`` from a camera at -y
    (+x to the right of the image). ``info["state"]`` holds the state in both modes.

    ## Rewards

    ``1.0`` per step.

    ## Episode End

    Terminated when ``|angle| > 12 deg`` or ``|x| > 2.4``; truncated after
    ``max_episode_steps`` steps. ``gymnasium.make`` consumes a ``max_episode_steps``
    keyword itself (its ``TimeLimit`` wrapper), so the scene's own limit is set through
    ``btgym.BlenderEnv("envs.cartpole:CartPoleScene", max_episode_steps=...)``. Reset: the
    point cache is freed, the scene goes back to its start frame, cart x and pole angle are
    drawn uniformly from [-0.05, 0.05]; velocities start at zero (Blender cannot give a
    rigid body an initial velocity). Bullet's world is rebuilt at the start frame, so the
    same seed and actions give bit-identical trajectories whatever ran before.

    ## Arguments

    ``obs_mode="state", width=160, height=120, engine="workbench", max_episode_steps=500``.
    The point cache keeps every simulated frame and a step's cost grows with their number
    (~0.02 us per cached frame); it ends ``CACHE_MARGIN`` frames after
    ``max_episode_steps``, and the physics freezes past it until the next reset.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": FPS}
    name = "CartPole"

    def __init__(
        self,
        obs_mode: str = "state",
        width: int = 160,
        height: int = 120,
        engine: str = "workbench",
        max_episode_steps: int = 500,
    ) -> None:
        if obs_mode not in OBS_MODES:
            raise ConfigError(f"expected obs_mode in {OBS_MODES}, got {obs_mode!r}")
        if max_episode_steps is None:  # the point cache needs an end
            raise ConfigError("expected max_episode_steps as an int >= 1, got None")
        super().__init__(max_episode_steps=max_episode_steps)
        self.obs_mode = obs_mode
        self.renderer = Renderer(width, height, engine=engine)
        self.action_space = spaces.Discrete(2)
        if obs_mode == "state":
            # As Gymnasium's CartPole: x and angle within twice their termination bounds
            # (an episode ends on the first step past them), velocities unbounded.
            high = np.array([2 * X_THRESHOLD, np.inf, 2 * THETA_THRESHOLD, np.inf], np.float32)
            self.observation_space = spaces.Box(-high, high, dtype=np.float32)
        else:
            self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        #: Randomization parameter for curricula: the push force (N), applied at each reset.
        self.force_mag = FORCE_MAG
        self._x = self._theta = 0.0
        self._state = np.zeros(4, np.float32)
        self._pose = 0  # counts resets and steps: which pose the scene is in
        self._frame_pose = -1  # the pose the renderer's last frame shows

    # -- build -----------------------------------------------------------------------
    def build(self) -> None:
        """Build the track, the cart and pole (rigid bodies, motor, hinge), camera and light."""
        kit.clear_scene()
        scene = bpy.context.scene
        self.bpy_scene = scene
        scene.render.fps, scene.render.fps_base = FPS, 1.0
        scene.gravity = (0.0, 0.0, -GRAVITY)
        end = min(MAX_FRAME, START_FRAME + self.max_episode_steps + CACHE_MARGIN)
        kit.rigid_body_world(SUBSTEPS, SOLVER_ITERATIONS, (START_FRAME, end))

        anchor = add_box("Anchor", (0.05, 0.05, 0.05))
        anchor.location = (0.0, 0.0, -0.5)
        anchor.hide_render = True
        self.cart = add_box("Cart", CART_HALF, (0.15, 0.35, 0.85))
        self.pole = add_box("Pole", POLE_HALF, (0.9, 0.55, 0.15))
        for obj, kind, mass, group in (
            (anchor, "PASSIVE", 1.0, 17),
            (self.cart, "ACTIVE", CART_MASS, 18),
            (self.pole, "ACTIVE", POLE_MASS, 19),
        ):
            kit.add_rigid_body(obj, kind, "BOX", mass=mass, collision_collection=group, **PHYSICS)
        kit.add_constraint("Slider", "SLIDER", anchor, self.cart, (0.0, 0.0, 0.0))
        motor = kit.add_constraint("Motor", "MOTOR", anchor, self.cart, (0.0, 0.0, 0.0))
        self.motor = motor.rigid_body_constraint
        self.motor.use_motor_lin = True
        self.motor.motor_lin_max_impulse = FORCE_MAG
        self.motor.motor_lin_target_velocity = 0.0
        # A hinge turns about its empty's local z: rotated +90 deg about x, that is world -y.
        self.hinge = kit.add_constraint(
            "Hinge", "HINGE", self.cart, self.pole, (0.0, 0.0, PIVOT_Z), (math.pi / 2, 0.0, 0.0)
        )

        # Scenery (not simulated): the track with its +/-2.4 m ends marked.
        track = add_box("Track", (X_THRESHOLD + CART_HALF[0], 0.04, 0.02), (0.35, 0.35, 0.35))
        track.location = (0.0, 0.0, -CART_HALF[2] - 0.02)
        for side in (-1, 1):
            post = add_box(f"Limit{side:+d}", (0.02, 0.04, 0.15), (0.75, 0.1, 0.1))
            post.location = (side * (X_THRESHOLD + CART_HALF[0]), 0.0, -CART_HALF[2] + 0.1)
        kit.add_camera((0.0, -8.2, 0.5), target=(0.0, 0.0, 0.5))
        kit.add_sun()
        kit.workbench_look("OBJECT", background=(0.9, 0.9, 0.9))
        self.renderer.configure()

    # -- episode ---------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """Put the cart and pole at a random pose near upright and restart the simulation."""
        super().reset(seed=seed, options=options)
        x, theta = (float(v) for v in self.np_random.uniform(-INIT_RANGE, INIT_RANGE, size=2))
        kit.restart_simulation(START_FRAME)  # drop the last episode's simulated frames
        self.motor.motor_lin_target_velocity = 0.0
        self.motor.motor_lin_max_impulse = float(self.force_mag)
        self.cart.location = (x, 0.0, 0.0)
        self.hinge.location = (x, 0.0, PIVOT_Z)
        half = POLE_LENGTH / 2
        self.pole.location = (x + half * math.sin(theta), 0.0, PIVOT_Z + half * math.cos(theta))
        self.pole.rotation_euler = (0.0, theta, 0.0)
        self.bpy_scene.frame_set(START_FRAME)  # Bullet's world is rebuilt from these poses
        self._pose += 1
        self._x, self._theta = self._read_pose()
        self._state = np.array([self._x, 0.0, self._theta, 0.0], np.float32)
        return self._observation(), {"state": self._state.copy(), "force_mag": self.force_mag}

    def step(self, action: Any):
        """Drive the motor left or right for one frame; ends off the track or past 12 degrees."""
        # Measured: a positive motor target moves the cart (the constraint's object2) to -x,
        # so pushing right (action 1) is a negative target.
        self.motor.motor_lin_target_velocity = -MOTOR_SPEED if int(action) == 1 else MOTOR_SPEED
        scene = self.bpy_scene
        scene.frame_set(scene.frame_current + 1)
        self._pose += 1
        x, theta = self._read_pose()
        velocity = (x - self._x) / TAU
        angular_velocity = math.remainder(theta - self._theta, math.tau) / TAU
        self._x, self._theta = x, theta
        self._state = np.array([x, velocity, theta, angular_velocity], np.float32)
        terminated = abs(x) > X_THRESHOLD or abs(theta) > THETA_THRESHOLD
        return self._observation(), 1.0, terminated, False, {"state": self._state.copy()}

    def render(self) -> np.ndarray:
        """The current frame: rendered at most once per step, in both observation modes."""
        if self._frame_pose != self._pose or self.renderer.last_frame is None:
            self.renderer.render()
            self._frame_pose = self._pose
        return self.renderer.last_frame

    # -- helpers ---------------------------------------------------------------------
    def _read_pose(self) -> tuple[float, float]:
        """Cart x and pole angle from the simulated world matrices (0 = upright, + = to +x)."""
        pole = self.pole.matrix_world  # its local z axis is (sin a, 0, cos a)
        return self.cart.matrix_world[0][3], math.atan2(pole[0][2], pole[2][2])

    def _observation(self) -> np.ndarray:
        if self.obs_mode == "state":
            return self._state.copy()
        return self.render()
