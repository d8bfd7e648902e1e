#include "VrRecognitionComponent.h"

#include "Async/Async.h"
#include "Components/SceneCaptureComponent2D.h"
#include "Components/SceneComponent.h"
#include "Engine/TextureRenderTarget2D.h"
#include "Engine/World.h"
#include "GameFramework/Actor.h"
#include "IImageWrapper.h"
#include "IImageWrapperModule.h"
#include "IWebSocket.h"
#include "Misc/FileHelper.h"
#include "RHICommandList.h"
#include "RHIGPUReadback.h"
#include "RenderingThread.h"
#include "TextureResource.h"
#include "TimerManager.h"
#include "VrRecognitionCore/ClientSession.h"
#include "VrRecognitionModule.h"
#include "WebSocketsModule.h"

#include <atomic>
#include <optional>
#include <string>
#include <vector>

namespace VrCore = VrRecognition::Core;

/** A frame between capture and encoding: what the readback holds and what travels with it. */
struct FVrCapturedFrame
{
	TSharedPtr<FRHIGPUTextureReadback> Readback;
	int32 Width = 0;
	int32 Height = 0;
	bool bBgra = true;
	std::optional<VrCore::HeadPose> Pose;
	std::optional<VrCore::GazePoint> Gaze;
	int64 CaptureUs = 0;
};

/** The component's non-UObject state: the protocol session and the captures on their way. */
struct FVrRecognitionState
{
	explicit FVrRecognitionState(VrCore::ClientOptions Options) : Session(std::move(Options)) {}

	VrCore::ClientSession Session;
	std::vector<VrCore::ClientEvent> Events;
	TArray<FVrCapturedFrame> Readbacks;
	/** Readbacks being copied or encoded (shared with the render thread and the encoding task). */
	TSharedPtr<std::atomic<int32>> Encoding = MakeShared<std::atomic<int32>>(0);
};

namespace
{
	int64 NowUs()
	{
		return static_cast<int64>(FPlatformTime::Seconds() * 1e6); // monotonic: capture_time_us and latency
	}

	FString FromUtf8(const std::string& Text)
	{
		return FString(UTF8_TO_TCHAR(Text.c_str()));
	}

	VrCore::HeadPose ToPose(const FTransform& Transform)
	{
		// The server echoes the pose without interpreting it: engine units and axes go out and come back.
		const FVector Location = Transform.GetLocation();
		const FQuat Rotation = Transform.GetRotation();
		VrCore::HeadPose Pose;
		Pose.Position[0] = static_cast<float>(Location.X);
		Pose.Position[1] = static_cast<float>(Location.Y);
		Pose.Position[2] = static_cast<float>(Location.Z);
		Pose.Rotation[0] = static_cast<float>(Rotation.X);
		Pose.Rotation[1] = static_cast<float>(Rotation.Y);
		Pose.Rotation[2] = static_cast<float>(Rotation.Z);
		Pose.Rotation[3] = static_cast<float>(Rotation.W);
		return Pose;
	}

	FVrRecognitionResult ToBlueprint(const VrCore::FrameResult& Frame)
	{
		const VrCore::Result& Answer = Frame.Answer;
		FVrRecognitionResult Out;
		Out.FrameId = static_cast<int64>(Answer.FrameId);
		Out.Status = FromUtf8(Answer.Status);
		for (const VrCore::Prediction& P : Answer.TopK)
		{
			FVrPrediction Prediction;
			Prediction.Label = FromUtf8(P.Label);
			Prediction.Index = static_cast<int32>(P.Index);
			Prediction.Score = static_cast<float>(P.Score);
			Out.TopK.Add(Prediction);
		}
		if (Answer.PosePosition && Answer.PoseRotation)
		{
			const std::vector<double>& P = *Answer.PosePosition;
			const std::vector<double>& R = *Answer.PoseRotation;
			Out.bHasPose = true;
			Out.CaptureLocation = FVector(P[0], P[1], P[2]);
			Out.CaptureRotation = FQuat(R[0], R[1], R[2], R[3]);
		}
		if (Answer.Gaze)
		{
			Out.bHasGaze = true;
			Out.Gaze = FVector2D((*Answer.Gaze)[0], (*Answer.Gaze)[1]);
		}
		Out.LatencyMs = static_cast<float>(Frame.LatencyMs);
		Out.ServerMs = static_cast<float>(Answer.Timing("total").value_or(-1.0));
		Out.ModelVersion = FromUtf8(Answer.ModelVersion);
		if (Answer.ErrorCode)
		{
			Out.ErrorCode = FromUtf8(*Answer.ErrorCode);
			Out.ErrorMessage = FromUtf8(Answer.ErrorMessage);
		}
		return Out;
	}

	TArray<FString> ClassList(const VrCore::ModelInfo& Model)
	{
		TArray<FString> Classes;
		for (const std::string& Name : Model.Classes) Classes.Add(FromUtf8(Name));
		return Classes;
	}
} // namespace

UVrRecognitionComponent::UVrRecognitionComponent()
{
	PrimaryComponentTick.bCanEverTick = true;
	PrimaryComponentTick.bStartWithTickEnabled = true;
}

UVrRecognitionComponent::~UVrRecognitionComponent() = default;

void UVrRecognitionComponent::BeginPlay()
{
	Super::BeginPlay();
	if (bConnectOnBeginPlay) Connect();
}

void UVrRecognitionComponent::EndPlay(const EEndPlayReason::Type EndPlayReason)
{
	Disconnect();
	ReleaseSocket(); // no event may reach a component that is going away
	RetiredSockets.Empty();
	Super::EndPlay(EndPlayReason);
}

void UVrRecognitionComponent::Connect()
{
	if (State && State->Session.State() != VrCore::EClientState::Stopped) return; // already connecting or connected
	VrCore::ClientOptions Options;
	Options.ClientName = "unreal-client";
	Options.TargetFps = TargetFps;
	Options.MaxInFlight = FMath::Max(1, MaxInFlight);
	Options.ReconnectBackoff.InitialSeconds = ReconnectInitialSeconds;
	Options.ReconnectBackoff.MaxSeconds = ReconnectMaxSeconds;
	if (TopK > 0) Options.Settings.TopK = TopK;
	if (BudgetMs > 0.f) Options.Settings.BudgetMs = BudgetMs;
	if (TargetFps > 0.f) Options.Settings.Fps = TargetFps;
	if (SmoothingEmaAlpha > 0.f) Options.Settings.SmoothingEmaAlpha = SmoothingEmaAlpha;
	if (GazeCropScale > 0.f) Options.Settings.GazeCropScale = GazeCropScale;
	State = MakeUnique<FVrRecognitionState>(std::move(Options));
	OpenSocket();
}

void UVrRecognitionComponent::Disconnect()
{
	if (!State) return;
	if (UWorld* World = GetWorld()) World->GetTimerManager().ClearTimer(ReconnectTimer);
	State->Session.Stop();
	if (Socket.IsValid() && Socket->IsConnected())
	{
		Socket->Close(VrCore::CloseCodes::Normal, FString()); // OnClosed reports the end (no reconnect: stopped)
	}
	else
	{
		ReleaseSocket(); // still connecting: drop the attempt
	}
}

bool UVrRecognitionComponent::IsConnected() const
{
	return State && State->Session.IsConnected();
}

TArray<FString> UVrRecognitionComponent::GetClasses() const
{
	return State ? ClassList(State->Session.Model()) : TArray<FString>();
}

void UVrRecognitionComponent::SetGaze(FVector2D Gaze, bool bValid)
{
	GazePoint = Gaze;
	bGazeValid = bValid && Gaze.X >= 0.0 && Gaze.X <= 1.0 && Gaze.Y >= 0.0 && Gaze.Y <= 1.0;
}

void UVrRecognitionComponent::Reconfigure(float NewBudgetMs, int32 NewTopK)
{
	if (!State || !Socket.IsValid() || !IsConnected()) return;
	VrCore::StreamSettings Settings;
	if (NewBudgetMs > 0.f) Settings.BudgetMs = NewBudgetMs;
	if (NewTopK > 0) Settings.TopK = NewTopK;
	Socket->Send(FromUtf8(State->Session.MakeConfigure(Settings)));
}

void UVrRecognitionComponent::SendPing()
{
	if (!State || !Socket.IsValid() || !IsConnected()) return;
	Socket->Send(FromUtf8(State->Session.MakePing(NowUs())));
}

void UVrRecognitionComponent::SaveNextFrame(const FString& FilePath)
{
	SaveNextFramePath = FilePath;
}

int64 UVrRecognitionComponent::GetFramesDroppedHere() const
{
	return State ? State->Session.Stats().FramesReplaced : 0;
}

// --- the WebSocket ----------------------------------------------------------------------------------

void UVrRecognitionComponent::OpenSocket()
{
	if (!State || State->Session.State() == VrCore::EClientState::Stopped) return;
	ReleaseSocket();
	State->Session.OnConnecting();
	TMap<FString, FString> Headers;
	if (!Token.IsEmpty()) Headers.Add(TEXT("Authorization"), FString::Printf(TEXT("Bearer %s"), *Token));
	Socket = FWebSocketsModule::Get().CreateWebSocket(ServerUrl, FString(), Headers);
	Socket->OnConnected().AddUObject(this, &UVrRecognitionComponent::HandleSocketConnected);
	Socket->OnConnectionError().AddUObject(this, &UVrRecognitionComponent::HandleSocketError);
	Socket->OnClosed().AddUObject(this, &UVrRecognitionComponent::HandleSocketClosed);
	Socket->OnMessage().AddUObject(this, &UVrRecognitionComponent::HandleSocketMessage);
	Socket->Connect();
}

void UVrRecognitionComponent::ReleaseSocket()
{
	if (!Socket.IsValid()) return;
	Socket->OnConnected().RemoveAll(this);
	Socket->OnConnectionError().RemoveAll(this);
	Socket->OnClosed().RemoveAll(this);
	Socket->OnMessage().RemoveAll(this);
	if (Socket->IsConnected()) Socket->Close(VrCore::CloseCodes::Normal, FString());
	RetiredSockets.Add(Socket); // released on the next tick, never inside its own delegate
	Socket.Reset();
}

void UVrRecognitionComponent::HandleSocketConnected()
{
	if (!State) return;
	if (State->Session.State() == VrCore::EClientState::Stopped)
	{
		Socket->Close(VrCore::CloseCodes::Normal, FString()); // stopped while connecting
		return;
	}
	Socket->Send(FromUtf8(State->Session.OnOpened())); // text: hello first
}

void UVrRecognitionComponent::HandleSocketMessage(const FString& Message)
{
	if (!State) return;
	const FTCHARToUTF8 Utf8(*Message);
	State->Session.OnText(std::string_view(reinterpret_cast<const char*>(Utf8.Get()), static_cast<size_t>(Utf8.Length())), NowUs(), State->Events);
	DispatchEvents();
	PumpSend();
}

void UVrRecognitionComponent::HandleSocketError(const FString& Error)
{
	ConnectionEnded(0, FString(), Error);
}

void UVrRecognitionComponent::HandleSocketClosed(int32 StatusCode, const FString& Reason, bool bWasClean)
{
	ConnectionEnded(StatusCode, Reason, bWasClean ? FString(TEXT("closed")) : FString(TEXT("connection lost")));
}

void UVrRecognitionComponent::ConnectionEnded(int32 StatusCode, const FString& Reason, const FString& Why)
{
	if (!State) return;
	// 1005 (no status) and 1006 (abnormal) are never sent on the wire: the connection ended without a close frame.
	const bool bHasCode = StatusCode >= 1000 && StatusCode != 1005 && StatusCode != 1006;
	const FTCHARToUTF8 ReasonUtf8(*Reason);
	const FTCHARToUTF8 WhyUtf8(*Why);
	const VrCore::DisconnectInfo Ended = State->Session.OnClosed(bHasCode ? std::optional<int>(StatusCode) : std::nullopt,
		std::string_view(reinterpret_cast<const char*>(ReasonUtf8.Get()), static_cast<size_t>(ReasonUtf8.Length())),
		std::string_view(reinterpret_cast<const char*>(WhyUtf8.Get()), static_cast<size_t>(WhyUtf8.Length())), State->Events);
	ReleaseSocket();
	DispatchEvents();
	if (Ended.bWillReconnect)
	{
		if (UWorld* World = GetWorld())
		{
			World->GetTimerManager().SetTimer(ReconnectTimer, this, &UVrRecognitionComponent::OpenSocket,
				FMath::Max(0.01f, static_cast<float>(Ended.ReconnectDelaySeconds)), false);
		}
	}
}

void UVrRecognitionComponent::DispatchEvents()
{
	if (!State) return;
	std::vector<VrCore::ClientEvent> Events;
	Events.swap(State->Events);
	for (const VrCore::ClientEvent& Event : Events)
	{
		switch (Event.Type)
		{
		case VrCore::EClientEventType::Connected:
			UE_LOG(LogVrRecognition, Log, TEXT("connected to %s: model %s"), *ServerUrl, *FromUtf8(Event.Hello.Model.Name));
			OnConnected.Broadcast(ClassList(Event.Hello.Model));
			break;
		case VrCore::EClientEventType::Result:
			OnResult.Broadcast(ToBlueprint(Event.Frame));
			break;
		case VrCore::EClientEventType::ServerError:
		case VrCore::EClientEventType::LocalError:
			UE_LOG(LogVrRecognition, Warning, TEXT("%s: %s"), *FromUtf8(Event.Error.Code), *FromUtf8(Event.Error.Message));
			OnServerError.Broadcast(FromUtf8(Event.Error.Code), FromUtf8(Event.Error.Message));
			break;
		case VrCore::EClientEventType::Pong:
			OnPong.Broadcast(static_cast<float>(Event.PongRoundTripMs));
			break;
		case VrCore::EClientEventType::Disconnected:
		{
			FVrDisconnectInfo Info;
			Info.CloseCode = Event.Ended.CloseCode.value_or(0);
			Info.CloseReason = FromUtf8(Event.Ended.CloseReason);
			Info.Description = FromUtf8(Event.Ended.Description);
			Info.bWasConnected = Event.Ended.bWasConnected;
			Info.bWillReconnect = Event.Ended.bWillReconnect;
			Info.ReconnectDelaySeconds = static_cast<float>(Event.Ended.ReconnectDelaySeconds);
			UE_LOG(LogVrRecognition, Log, TEXT("disconnected: %s"), *Info.Description);
			OnDisconnected.Broadcast(Info);
			break;
		}
		case VrCore::EClientEventType::ModelChanged:
		case VrCore::EClientEventType::Configured:
			break; // the session keeps the model and settings; GetClasses() reads them
		}
	}
}

/** Sends what the session lets out now (its in-flight cap and pacing decide). */
void UVrRecognitionComponent::PumpSend()
{
	if (!State || !Socket.IsValid() || !Socket->IsConnected()) return;
	std::vector<uint8_t> Message;
	while (State->Session.NextMessage(NowUs(), Message, State->Events))
	{
		Socket->Send(Message.data(), Message.size(), true); // one binary message: header + JPEG
	}
	if (!State->Events.empty()) DispatchEvents();
}

// --- capture ----------------------------------------------------------------------------------------

void UVrRecognitionComponent::TickComponent(float DeltaTime, ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
{
	Super::TickComponent(DeltaTime, TickType, ThisTickFunction);
	RetiredSockets.Empty();
	if (!State) return;
	PollReadbacks();
	PumpSend(); // pacing: a frame held back by TargetFps may go now
	const double Now = FPlatformTime::Seconds();
	if (bCaptureAutomatically && CaptureFps > 0.f && Now >= NextCaptureSeconds && State->Session.IsConnected())
	{
		NextCaptureSeconds = Now + 1.0 / CaptureFps;
		StartCapture();
	}
}

void UVrRecognitionComponent::CaptureNow()
{
	if (State && State->Session.IsConnected()) StartCapture();
}

USceneComponent* UVrRecognitionComponent::PoseComponent() const
{
	if (PoseSource) return PoseSource;
	if (SceneCapture) return SceneCapture;
	const AActor* Owner = GetOwner();
	return Owner ? Owner->GetRootComponent() : nullptr;
}

UTextureRenderTarget2D* UVrRecognitionComponent::CaptureTarget() const
{
	if (RenderTarget) return RenderTarget;
	return SceneCapture ? SceneCapture->TextureTarget.Get() : nullptr;
}

void UVrRecognitionComponent::StartCapture()
{
	UTextureRenderTarget2D* Target = CaptureTarget();
	if (!Target || !State) return;
	if (State->Readbacks.Num() + State->Encoding->load() >= MaxReadbacksInFlight) return;
	if (bSkipWhenClientBusy && State->Session.IsSaturated()) return; // it would only replace the waiting frame
	const EPixelFormat Format = Target->GetFormat();
	if (Format != PF_B8G8R8A8 && Format != PF_R8G8B8A8)
	{
		UE_LOG(LogVrRecognition, Warning, TEXT("the render target must be 8-bit RGBA or BGRA"));
		return;
	}
	if (SceneCapture) SceneCapture->CaptureScene();
	FTextureRenderTargetResource* Resource = Target->GameThread_GetRenderTargetResource();
	if (!Resource) return;

	FVrCapturedFrame Frame;
	Frame.Readback = MakeShared<FRHIGPUTextureReadback>(TEXT("VrRecognitionReadback"));
	Frame.Width = Target->SizeX;
	Frame.Height = Target->SizeY;
	Frame.bBgra = Format == PF_B8G8R8A8;
	Frame.CaptureUs = NowUs();
	if (const USceneComponent* Source = PoseComponent()) Frame.Pose = ToPose(Source->GetComponentTransform());
	if (bGazeValid) Frame.Gaze = VrCore::GazePoint{static_cast<float>(GazePoint.X), static_cast<float>(GazePoint.Y)};
	TSharedPtr<FRHIGPUTextureReadback> Readback = Frame.Readback;
	ENQUEUE_RENDER_COMMAND(VrRecognitionCopy)([Readback, Resource](FRHICommandListImmediate& RHICmdList) {
		Readback->EnqueueCopy(RHICmdList, Resource->GetRenderTargetTexture());
	});
	State->Readbacks.Add(MoveTemp(Frame));
}

void UVrRecognitionComponent::PollReadbacks()
{
	while (State->Readbacks.Num() > 0 && State->Readbacks[0].Readback->IsReady())
	{
		FVrCapturedFrame Done = MoveTemp(State->Readbacks[0]);
		State->Readbacks.RemoveAt(0);
		TSharedPtr<std::atomic<int32>> Encoding = State->Encoding;
		Encoding->fetch_add(1);
		const TWeakObjectPtr<UVrRecognitionComponent> WeakThis(this);
		const int32 Quality = JpegQuality;
		// Lock/Unlock belong to the render thread; the copy out is small (448 x 252 x 4 = 450 KB).
		ENQUEUE_RENDER_COMMAND(VrRecognitionLock)([Done = MoveTemp(Done), WeakThis, Quality, Encoding](FRHICommandListImmediate&) mutable {
			int32 RowPitchInPixels = 0;
			const uint8* Data = static_cast<const uint8*>(Done.Readback->Lock(RowPitchInPixels));
			TArray64<uint8> Pixels;
			if (Data && RowPitchInPixels >= Done.Width)
			{
				const int64 RowBytes = static_cast<int64>(Done.Width) * 4;
				Pixels.SetNumUninitialized(RowBytes * Done.Height);
				for (int32 Row = 0; Row < Done.Height; ++Row)
				{
					FMemory::Memcpy(Pixels.GetData() + Row * RowBytes, Data + static_cast<int64>(Row) * RowPitchInPixels * 4, RowBytes);
				}
			}
			Done.Readback->Unlock();
			// JPEG encoding off the game and render threads.
			AsyncTask(ENamedThreads::AnyBackgroundThreadNormalTask, [Pixels = MoveTemp(Pixels), Done = MoveTemp(Done), WeakThis, Quality, Encoding]() mutable {
				TArray64<uint8> Jpeg;
				IImageWrapperModule* Module = FVrRecognitionModule::ImageWrappers();
				if (Module != nullptr && Pixels.Num() > 0)
				{
					TSharedPtr<IImageWrapper> Wrapper = Module->CreateImageWrapper(EImageFormat::JPEG);
					if (Wrapper.IsValid()
						&& Wrapper->SetRaw(Pixels.GetData(), Pixels.Num(), Done.Width, Done.Height, Done.bBgra ? ERGBFormat::BGRA : ERGBFormat::RGBA, 8))
					{
						Jpeg = Wrapper->GetCompressed(Quality);
					}
				}
				AsyncTask(ENamedThreads::GameThread, [Jpeg = MoveTemp(Jpeg), Done = MoveTemp(Done), WeakThis, Encoding]() mutable {
					Encoding->fetch_sub(1);
					if (UVrRecognitionComponent* Self = WeakThis.Get()) Self->SubmitEncoded(MoveTemp(Jpeg), Done);
				});
			});
		});
	}
}

void UVrRecognitionComponent::SubmitEncoded(TArray64<uint8>&& Jpeg, const FVrCapturedFrame& Frame)
{
	if (!State) return;
	if (Jpeg.Num() == 0)
	{
		UE_LOG(LogVrRecognition, Warning, TEXT("JPEG encoding failed"));
		return;
	}
	if (!SaveNextFramePath.IsEmpty())
	{
		const bool bSaved = FFileHelper::SaveArrayToFile(TArrayView<const uint8>(Jpeg.GetData(), static_cast<int32>(Jpeg.Num())), *SaveNextFramePath);
		UE_LOG(LogVrRecognition, Log, TEXT("%s the frame as sent to %s"), bSaved ? TEXT("saved") : TEXT("could not save"), *SaveNextFramePath);
		SaveNextFramePath.Empty();
	}
	VrCore::OutgoingFrame Out;
	Out.Payload.assign(Jpeg.GetData(), Jpeg.GetData() + Jpeg.Num());
	Out.Width = Frame.Width;
	Out.Height = Frame.Height;
	Out.Pose = Frame.Pose;
	Out.Gaze = Frame.Gaze;
	Out.CaptureTimeUs = Frame.CaptureUs;
	State->Session.Submit(std::move(Out), NowUs());
	PumpSend();
}

bool UVrRecognitionComponent::SubmitJpeg(const TArray<uint8>& Jpeg, int32 Width, int32 Height, const FTransform& Pose, bool bHasPose)
{
	if (!State || Jpeg.Num() == 0) return false;
	VrCore::OutgoingFrame Out;
	Out.Payload.assign(Jpeg.GetData(), Jpeg.GetData() + Jpeg.Num());
	Out.Width = Width;
	Out.Height = Height;
	if (bHasPose) Out.Pose = ToPose(Pose);
	if (bGazeValid) Out.Gaze = VrCore::GazePoint{static_cast<float>(GazePoint.X), static_cast<float>(GazePoint.Y)};
	const bool bAccepted = State->Session.Submit(std::move(Out), NowUs());
	PumpSend();
	return bAccepted;
}
