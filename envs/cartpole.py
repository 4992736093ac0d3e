"""``btgym/CartPole-v0``: the classic cart-pole, built from Blender rigid bodies.

Physics (Bullet, through Blender's rigid-body world; no hand-written dynamics):

- A passive, hidden *anchor* body holds two constraints on the *cart* (1 kg box): a
  SLIDER, so the cart only moves along world x, and a MOTOR, which drives it. The *pole*
  (0.1 kg, 1 m long thin box, i.e. Gymnasium's half-length 0.5) sits on a HINGE about the
  world y axis at the top of the cart. Gravity is 9.8 m/s^2, damping and friction are zero,
  and the bodies are in separate collision collections, so nothing collides.
- Action: Blender's rigid-body API has no "apply force" call, so each step sets the motor's
  ``motor_lin_target_velocity`` to +/-``MOTOR_SPEED`` (1000 m/s, never reached) with
  ``motor_lin_max_impulse = FORCE_MAG`` (10). Bullet caps the motor's impulse per substep at
  that value times the substep length, so the saturated motor pushes the cart with a
  constant force of +/-10 N: exactly Gymnasium CartPole-v1's bang-bang ``force_mag``. The
  cart's acceleration from rest (~9.9 m/s^2) and the pole's fall match Gymnasium's equations
  integrated finely (Gymnasium's explicit Euler lags them by one step). ``0`` pushes left
  (-x), ``1`` pushes right (+x).
- Timestep: the scene runs at 50 frames per second, one frame per ``step``: 0.02 s, as
  Gymnasium's ``tau``, with 10 physics substeps (2 ms) and 10 solver iterations per frame.
  A step is ``motor target = ...; scene.frame_set(frame + 1)``: no ``bpy.ops``, no loops.
- Reset: the rigid-body point cache is freed, the scene goes back to its start frame, and
  the cart and pole are posed from ``self.np_random``: cart x and pole angle uniform in
  [-0.05, 0.05]. Velocities start at zero: Blender cannot give a rigid body an initial
  velocity (Gymnasium also draws them from [-0.05, 0.05]). Bullet's world is rebuilt at
  the start frame, so the same seed and actions give bit-identical trajectories whatever
  ran before.

Observation: ``state`` mode, ``Box(-inf, inf, (4,), float32)`` = [cart x (m), cart
velocity (m/s), pole angle (rad), pole angular velocity (rad/s)], Gymnasium's order and
signs: x grows to the right, the angle is 0 upright and positive when the pole's top leans
to +x (a rotation about +y), so pushing right (action 1) makes the angle go negative (the
pole falls left). The velocities are backward differences over the 0.02 s step (Blender
does not expose rigid-body velocities), so they lag the true ones by half a step.
``rgb`` mode: the rendered frame, ``(height, width, 3) uint8``, from a camera at -y looking
at +y (+x is to the right of the image). ``info["state"]`` holds the state in both modes.

Reward ``1.0`` per step; terminated when ``|angle| > 12 deg`` or ``|x| > 2.4``; truncated
after ``max_episode_steps`` steps. Note that ``gymnasium.make`` consumes a
``max_episode_steps`` keyword itself (it adds a ``TimeLimit`` wrapper), so the scene's own
limit is reached through ``btgym.BlenderEnv("envs.cartpole:CartPoleScene",
max_episode_steps=...)``. Blender's point cache keeps every simulated frame of an episode
and a step's cost grows with their number (about 0.02 us per cached frame), so very long
episodes get slower; the cache ends ``CACHE_MARGIN`` frames after ``max_episode_steps``, and
the physics freezes past it until the next reset.
"""

from __future__ import annotations

import math
from typing import Any

import bpy
import numpy as np
from gymnasium import spaces

from blender_side import Scene
from blender_side.render import Renderer
from envs.cube import add_camera, add_mesh, add_sun, clear_scene

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

BOX_CORNERS = np.array(
    [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float32
)
BOX_FACES = np.array(
    [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]],
    dtype=np.int32,
)
OBS_MODES = ("state", "rgb")


def add_box(name: str, half: tuple[float, float, float], color=(0.8, 0.8, 0.8)) -> Any:
    """A box mesh of half-extents ``half`` centred on its origin."""
    obj = add_mesh(name, BOX_CORNERS * np.asarray(half, np.float32), BOX_FACES)
    obj.color = (*color, 1.0)
    return obj


def add_rigid_body(obj: Any, kind: str, mass: float, collection: int) -> Any:
    """Make ``obj`` a frictionless, undamped, never-sleeping box body (build time only)."""
    bpy.context.view_layer.objects.active = obj  # the operators act on the active object
    bpy.ops.rigidbody.object_add(type=kind)
    body = obj.rigid_body
    body.collision_shape = "BOX"
    body.mass = mass
    body.friction = 0.0
    body.linear_damping = body.angular_damping = 0.0
    body.use_deactivation = False
    body.collision_collections = [i == collection for i in range(20)]
    return body


def add_constraint(name: str, kind: str, a: Any, b: Any, location, rotation=(0.0, 0.0, 0.0)):
    """A rigid-body constraint between ``a`` and ``b`` on a new empty; returns the empty."""
    empty = bpy.data.objects.new(name, None)
    bpy.context.scene.collection.objects.link(empty)
    empty.location, empty.rotation_euler = location, rotation
    bpy.context.view_layer.objects.active = empty
    bpy.ops.rigidbody.constraint_add(type=kind)
    constraint = empty.rigid_body_constraint
    constraint.object1, constraint.object2 = a, b
    constraint.disable_collisions = True
    return empty


class CartPoleScene(Scene):
    """Balance a pole on a cart pushed left or right with a constant 10 N force."""

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
        super().__init__()
        if obs_mode not in OBS_MODES:
            raise ValueError(f"expected obs_mode in {OBS_MODES}, got {obs_mode!r}")
        if not (isinstance(max_episode_steps, int) and max_episode_steps >= 1):
            raise ValueError(
                f"expected max_episode_steps as an int >= 1, got {max_episode_steps!r}"
            )
        self.obs_mode = obs_mode
        self.max_episode_steps = max_episode_steps
        self.renderer = Renderer(width, height, engine=engine)
        self.action_space = spaces.Discrete(2)
        if obs_mode == "state":
            self.observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
        else:
            self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.steps = 0
        #: Randomization parameter for curricula: the push force (N), applied at each reset.
        self.force_mag = FORCE_MAG
        self._x = self._theta = 0.0
        self._state = np.zeros(4, np.float32)
        self._pose = 0  # counts resets and steps: which pose the scene is in
        self._frame_pose = -1  # the pose the renderer's last frame shows

    # -- build -----------------------------------------------------------------------
    def build(self) -> None:
        clear_scene()
        scene = bpy.context.scene
        self.bpy_scene = scene
        scene.render.fps, scene.render.fps_base = FPS, 1.0
        scene.gravity = (0.0, 0.0, -GRAVITY)
        if scene.rigidbody_world is None:
            bpy.ops.rigidbody.world_add()
        world = scene.rigidbody_world
        world.enabled = True
        world.time_scale = 1.0
        world.substeps_per_frame = SUBSTEPS
        world.solver_iterations = SOLVER_ITERATIONS
        end = min(MAX_FRAME, START_FRAME + self.max_episode_steps + CACHE_MARGIN)
        scene.frame_start, scene.frame_end = START_FRAME, end
        world.point_cache.frame_start, world.point_cache.frame_end = START_FRAME, end

        anchor = add_box("Anchor", (0.05, 0.05, 0.05))
        anchor.location = (0.0, 0.0, -0.5)
        anchor.hide_render = True
        self.cart = add_box("Cart", CART_HALF, (0.15, 0.35, 0.85))
        self.pole = add_box("Pole", POLE_HALF, (0.9, 0.55, 0.15))
        add_rigid_body(anchor, "PASSIVE", 1.0, 17)
        add_rigid_body(self.cart, "ACTIVE", CART_MASS, 18)
        add_rigid_body(self.pole, "ACTIVE", POLE_MASS, 19)
        add_constraint("Slider", "SLIDER", anchor, self.cart, (0.0, 0.0, 0.0))
        motor = add_constraint("Motor", "MOTOR", anchor, self.cart, (0.0, 0.0, 0.0))
        self.motor = motor.rigid_body_constraint
        self.motor.use_motor_lin = True
        self.motor.motor_lin_max_impulse = FORCE_MAG
        self.motor.motor_lin_target_velocity = 0.0
        # A hinge turns about its empty's local z: rotated +90 deg about x, that is world -y.
        self.hinge = add_constraint(
            "Hinge", "HINGE", self.cart, self.pole, (0.0, 0.0, PIVOT_Z), (math.pi / 2, 0.0, 0.0)
        )

        # Scenery (not simulated): the track with its +/-2.4 m ends marked.
        track = add_box("Track", (X_THRESHOLD + CART_HALF[0], 0.04, 0.02), (0.35, 0.35, 0.35))
        track.location = (0.0, 0.0, -CART_HALF[2] - 0.02)
        for side in (-1, 1):
            post = add_box(f"Limit{side:+d}", (0.02, 0.04, 0.15), (0.75, 0.1, 0.1))
            post.location = (side * (X_THRESHOLD + CART_HALF[0]), 0.0, -CART_HALF[2] + 0.1)
        add_camera((0.0, -8.2, 0.5), target=(0.0, 0.0, 0.5))
        add_sun()
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "OBJECT"
        scene.world = scene.world or bpy.data.worlds.new("World")
        scene.world.color = (0.9, 0.9, 0.9)
        self.renderer.configure()

    # -- episode ---------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed, options=options)
        x, theta = (float(v) for v in self.np_random.uniform(-INIT_RANGE, INIT_RANGE, size=2))
        scene = self.bpy_scene
        bpy.ops.ptcache.free_bake_all()  # drop the last episode's simulated frames
        scene.frame_set(START_FRAME)
        self.motor.motor_lin_target_velocity = 0.0
        self.motor.motor_lin_max_impulse = float(self.force_mag)
        self.cart.location = (x, 0.0, 0.0)
        self.hinge.location = (x, 0.0, PIVOT_Z)
        half = POLE_LENGTH / 2
        self.pole.location = (x + half * math.sin(theta), 0.0, PIVOT_Z + half * math.cos(theta))
        self.pole.rotation_euler = (0.0, theta, 0.0)
        scene.frame_set(START_FRAME)  # Bullet's world is rebuilt from these poses
        self.steps = 0
        self._pose += 1
        self._x, self._theta = self._read_pose()
        self._state = np.array([self._x, 0.0, self._theta, 0.0], np.float32)
        return self._observation(), {"state": self._state.copy(), "force_mag": self.force_mag}

    def step(self, action: Any):
        # Measured: a positive motor target moves the cart (the constraint's object2) to -x,
        # so pushing right (action 1) is a negative target.
        self.motor.motor_lin_target_velocity = -MOTOR_SPEED if int(action) == 1 else MOTOR_SPEED
        scene = self.bpy_scene
        scene.frame_set(scene.frame_current + 1)
        self.steps += 1
        self._pose += 1
        x, theta = self._read_pose()
        velocity = (x - self._x) / TAU
        angular_velocity = math.remainder(theta - self._theta, math.tau) / TAU
        self._x, self._theta = x, theta
        self._state = np.array([x, velocity, theta, angular_velocity], np.float32)
        terminated = abs(x) > X_THRESHOLD or abs(theta) > THETA_THRESHOLD
        truncated = self.steps >= self.max_episode_steps
        return self._observation(), 1.0, terminated, truncated, {"state": self._state.copy()}

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
