// UVrRecognitionComponent: streams what a scene capture sees to vr-serve and raises the answers as
// Blueprint events. The protocol logic is the plain C++ core (VrRecognitionCore/ClientSession.h, the
// same code tests/test_unreal_client.py runs against a real server); this class only connects it to the
// engine:
//
// - game thread: CaptureScene() at CaptureFps, a GPU readback enqueued on the render thread and polled
//   (never ReadPixels, which stalls the frame), the WebSocket (IWebSocket's delegates run here), the
//   session, the Blueprint events;
// - render thread: the copy into the readback's staging texture, then Lock/copy/Unlock once ready;
// - a background task: JPEG encoding with IImageWrapper; the bytes come back to the game thread.
//
// Latest frame wins: at most MaxInFlight frames are unanswered; a newer frame replaces the one waiting,
// nothing queues behind a slow server or network. Lost connections reconnect with jittered backoff.
#pragma once

#include "CoreMinimal.h"
#include "Components/ActorComponent.h"
#include "Engine/EngineTypes.h"
#include "VrRecognitionTypes.h"

#include "VrRecognitionComponent.generated.h"

class IWebSocket;
class USceneCaptureComponent2D;
class USceneComponent;
class UTextureRenderTarget2D;
struct FVrRecognitionState;
struct FVrCapturedFrame;

DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FOnVrRecognitionPong, float, RoundTripMs);

UCLASS(ClassGroup = (VrRecognition), BlueprintType, meta = (BlueprintSpawnableComponent))
class VRRECOGNITION_API UVrRecognitionComponent : public UActorComponent
{
	GENERATED_BODY()

public:
	UVrRecognitionComponent();
	virtual ~UVrRecognitionComponent() override;

	// --- server -------------------------------------------------------------------------------------

	/** ws://HOST:PORT/ or wss://HOST:PORT/ (wss off the local network). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server")
	FString ServerUrl = TEXT("ws://192.168.1.10:8765/");

	/** Sent as "Authorization: Bearer TOKEN" in the handshake when not empty. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server")
	FString Token;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server")
	bool bConnectOnBeginPlay = true;

	/** Labels per result; 0 = the server's default. Any value is clamped to the class count by the server. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server", meta = (ClampMin = "0"))
	int32 TopK = 3;

	/** Per-frame deadline on the server, ms; 0 = the server's default (11.1). Frames over it are answered "late". */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server", meta = (ClampMin = "0"))
	float BudgetMs = 0.f;

	/** Most frames sent per second (also sent as fps in hello); 0 = only MaxInFlight limits. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server", meta = (ClampMin = "0"))
	float TargetFps = 30.f;

	/** Frames sent but not answered yet. 1 gives the lowest latency, 2 hides a network round trip. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server", meta = (ClampMin = "1"))
	int32 MaxInFlight = 2;

	/** Server-side exponential smoothing of scores, weight of the newest frame; 0 = off. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server", meta = (ClampMin = "0", ClampMax = "1"))
	float SmoothingEmaAlpha = 0.f;

	/** Classify a square around the gaze point, this fraction of the shorter image side; 0 = off. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server", meta = (ClampMin = "0", ClampMax = "1"))
	float GazeCropScale = 0.f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server")
	float ReconnectInitialSeconds = 0.5f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Server")
	float ReconnectMaxSeconds = 10.f;

	// --- capture ------------------------------------------------------------------------------------

	/** Renders the view to send into its TextureTarget. Turn its "Capture Every Frame" off: the component
	 * calls CaptureScene() itself at CaptureFps. Empty: RenderTarget is read as something else renders it. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture")
	TObjectPtr<USceneCaptureComponent2D> SceneCapture;

	/** Read back and sent; empty: the SceneCapture's TextureTarget. 8-bit RGBA or BGRA formats only.
	 * The server resizes to the model input: send little more than that (448 x 252 for a 224 model). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture")
	TObjectPtr<UTextureRenderTarget2D> RenderTarget;

	/** Whose world transform is sent as the frame's pose (echoed in results). Empty: the SceneCapture,
	 * else the owner's root component. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture")
	TObjectPtr<USceneComponent> PoseSource;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture")
	bool bCaptureAutomatically = true;

	/** Captures per second (a readback costs GPU time even when the client then drops the frame). */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture", meta = (ClampMin = "0"))
	float CaptureFps = 30.f;

	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture", meta = (ClampMin = "1", ClampMax = "100"))
	int32 JpegQuality = 80;

	/** More pending readbacks (or encodes) skip the capture rather than queue GPU work. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture", meta = (ClampMin = "1"))
	int32 MaxReadbacksInFlight = 2;

	/** Skip the capture when the client is at its in-flight cap and already holds a waiting frame. */
	UPROPERTY(EditAnywhere, BlueprintReadWrite, Category = "VR Recognition|Capture")
	bool bSkipWhenClientBusy = true;

	// --- events (game thread) -------------------------------------------------------------------------

	UPROPERTY(BlueprintAssignable, Category = "VR Recognition")
	FOnVrRecognitionResult OnResult;

	/** The stream is open: the model's class list. */
	UPROPERTY(BlueprintAssignable, Category = "VR Recognition")
	FOnVrRecognitionConnected OnConnected;

	UPROPERTY(BlueprintAssignable, Category = "VR Recognition")
	FOnVrRecognitionDisconnected OnDisconnected;

	/** An error message from the server (fatal ones are followed by a close), or a frame refused here. */
	UPROPERTY(BlueprintAssignable, Category = "VR Recognition")
	FOnVrRecognitionError OnServerError;

	UPROPERTY(BlueprintAssignable, Category = "VR Recognition")
	FOnVrRecognitionPong OnPong;

	// --- calls ----------------------------------------------------------------------------------------

	/** Connects with the current settings (reconnecting after losses until Disconnect). */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	void Connect();

	/** Closes the stream (close 1000) and stops reconnecting. */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	void Disconnect();

	UFUNCTION(BlueprintPure, Category = "VR Recognition")
	bool IsConnected() const;

	/** The model's class list (updated when the server hot-reloads its model). */
	UFUNCTION(BlueprintPure, Category = "VR Recognition")
	TArray<FString> GetClasses() const;

	/** Captures and sends one frame now, whatever CaptureFps says. */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	void CaptureNow();

	/** The gaze point sent with the next captures: normalised to [0, 1] from the captured image's
	 * top-left (project the eye tracker's gaze through the capture's view); bValid false: no gaze. */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	void SetGaze(FVector2D Gaze, bool bValid);

	/** Changes settings mid-stream, e.g. the budget when the headset's refresh rate changes. A value of 0
	 * leaves that setting as it is. */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	void Reconfigure(float NewBudgetMs, int32 NewTopK);

	/** Application-level round trip; OnPong reports it. */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	void SendPing();

	/** Sends a JPEG encoded elsewhere (a passthrough camera frame, say), with the pose it was taken at. */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	bool SubmitJpeg(const TArray<uint8>& Jpeg, int32 Width, int32 Height, const FTransform& Pose, bool bHasPose);

	/** Writes the next encoded frame, exactly the JPEG that is sent, to FilePath (e.g. under the project's
	 * Saved directory): the one-time check that frames are upright on a target platform (docs/unreal.md). */
	UFUNCTION(BlueprintCallable, Category = "VR Recognition")
	void SaveNextFrame(const FString& FilePath);

	/** Frames replaced by a newer one before they were sent (dropped here, by design). */
	UFUNCTION(BlueprintPure, Category = "VR Recognition")
	int64 GetFramesDroppedHere() const;

	virtual void TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction) override;

protected:
	virtual void BeginPlay() override;
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) override;

private:
	void OpenSocket();
	void ReleaseSocket();
	void HandleSocketConnected();
	void HandleSocketError(const FString& Error);
	void HandleSocketClosed(int32 StatusCode, const FString& Reason, bool bWasClean);
	void HandleSocketMessage(const FString& Message);
	void ConnectionEnded(int32 StatusCode, const FString& Reason, const FString& Why);
	void DispatchEvents();
	void PumpSend();
	void StartCapture();
	void PollReadbacks();
	void SubmitEncoded(TArray64<uint8>&& Jpeg, const FVrCapturedFrame& Frame);
	USceneComponent* PoseComponent() const;
	UTextureRenderTarget2D* CaptureTarget() const;

	TSharedPtr<IWebSocket> Socket;
	TArray<TSharedPtr<IWebSocket>> RetiredSockets;
	TUniquePtr<FVrRecognitionState> State;
	FTimerHandle ReconnectTimer;
	double NextCaptureSeconds = 0.0;
	FVector2D GazePoint = FVector2D::ZeroVector;
	bool bGazeValid = false;
	FString SaveNextFramePath;
};
